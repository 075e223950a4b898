"""Compile-time experiment (GPU): one recipe compiled three ways, each in its own process with empty Inductor and
Triton caches (run it once per mode). Prints one JSON line: phase times of the first step, warm-up total, the
first real steps' losses (numerics), and the median step time at the last window.

    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) TRITON_CACHE_DIR=$(mktemp -d) python .data/compile_modes.py MODE
MODE: whole (torch.compile of the model, as the trainer does), blocksplus (each block compiled in place, as call A's
"blocks", plus the embeddings + masks and the head + loss compiled apart; the U-net skip adds stay eager). Then 5 profiled steps: the kernel families (benchmarks/step_time.py) to stderr.
"""
import json, statistics, sys, time
t_import = time.time()
import torch
from speedrun.build import build_model, build_optimizers
from speedrun.data.stream import BatchStream
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.step import train_step, warmup_and_restore
from speedrun.optim.schedule import long_window_blocks

import torch.nn.functional as F
from torch import nn
from speedrun.data.tokenizer import EOT
from speedrun.model.fp8 import fp8_softcap_cross_entropy
from speedrun.model.gpt import norm
from speedrun.model.mtp import mtp_cross_entropy, mtp_targets


class BlocksPlus(nn.Module):
    def __init__(self, model):
        super().__init__()
        self._orig_mod = model
        torch._dynamo.config.recompile_limit = 64
        for b in model.blocks:
            b.compile(dynamic=False)
        self.prologue = torch.compile(self._prologue, dynamic=False)
        self.output = torch.compile(self._output, dynamic=False)

    def _prologue(self, inputs, long_blocks):
        m = self._orig_mod
        ve = [t(inputs)[None] for t in m.value_embeds]
        x = m.embed(inputs)
        if m.smear_gate_w is not None:
            x = m.smear_embeddings(x, inputs, None)
        return (norm(x[None]), ve, *m.masks(inputs, long_blocks), inputs != EOT)

    def _output(self, x, targets):
        m, r = self._orig_mod, self._orig_mod.recipe
        extra = mtp_targets(targets, m.mtp_w.numel()) if targets is not None and m.mtp_active() else None
        if targets is not None and m.fused_head_loss_active():
            return fp8_softcap_cross_entropy(norm(x), m.lm_head.weight, targets, *m.lm_head.fp8_scales,
                                             r.logit_cap, r.logit_cap_div, extra, None if extra is None else m.mtp_w)
        logits = m.head(x).view(-1, r.padded_vocab)
        if extra is not None:
            return mtp_cross_entropy(logits, targets.view(-1), extra, m.mtp_w)
        return F.cross_entropy(logits, targets.view(-1))

    def forward(self, inputs, targets, long_blocks):
        m = self._orig_mod
        x0, ve, long_mask, short_mask, not_start = self.prologue(inputs, long_blocks)
        x, skips, n = x0, [], len(m.skip_weights)
        for i, block in enumerate(m.blocks):
            if i >= n:
                x = x + m.skip_weights[i - n] * skips.pop()
            t = m.ve_table[i]
            x = block(x, ve[t] if t is not None else None, x0, long_mask if m.long_layer[i] else short_mask, not_start)
            if i < n:
                skips.append(x)
        return self.output(x, targets)


mode, recipe = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "fast_1gpu")
r = load_recipe(recipe, [])
plan = make_plan(r)
torch.cuda.set_device(plan.device)
model = build_model(r, plan)
from torch import _dynamo  # noqa
t0 = time.time()
opts = build_optimizers(model, r, compile_ns=True)
runner = BlocksPlus(model) if mode == "blocksplus" else torch.compile(model, dynamic=False)
stream = BatchStream("/tmp/corpus/corpus_train_00000[0-4].bin", r.batch_tokens, r.seq_len, loop=True, device=plan.device)
sync = torch.cuda.synchronize
w0 = model.window(0)
g = torch.Generator().manual_seed(1)
tok = torch.randint(0, r.vocab_size, (r.seq_len + 1,), generator=g).cuda()
inputs, targets = tok[:-1].int(), tok[1:].long()
# first step by phase: forward (compile), backward (compile), optimisers (Muon's compiles)
ta = time.time(); loss = runner(inputs, targets, w0); sync(); tb = time.time()
loss.backward(); sync(); tc = time.time()
opts[1].step(); opts[0].step(); model.zero_grad(set_to_none=True); sync(); td = time.time()
phases = dict(forward=tb - ta, backward=tc - tb, optimisers=td - tc)
warmup_and_restore(runner, opts, r, plan, w0)  # the trainer's 10 untimed steps and the restore
sync(); warm_s = time.time() - t0
from torch._dynamo.utils import compile_times
ct = compile_times(repr="csv", aggregate=True)
losses = [train_step(runner, stream.next_step(), opts, s, model.window(s), r, 1).item() for s in range(5)]
wl = torch.tensor(long_window_blocks(r.steps, r.steps, r.window_ramp_tokens, r.attn_block_size), dtype=torch.int32, device="cuda")
ms = []
for i in range(40):
    b = stream.next_step()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record(); train_step(runner, b, opts, 10, wl, r, 1); e1.record(); ms.append((e0, e1))
sync()
ms = [a.elapsed_time(b) for a, b in ms][10:]
WANT = ("_compile.compile_inner", "bytecode_tracing", "OutputGraph.call_user_compiler", "create_aot_dispatcher_function",
        "compile_fx.<locals>.fw_compiler_base", "compile_fx.<locals>.bw_compiler", "GraphLowering.compile_to_fn",
        "GraphLowering.codegen", "async_compile.wait", "compile_file", "PyCodeCache.load_by_key_path")
keys = {k: round(float(v), 1) for k, v in zip(*ct) if k in WANT}
print(json.dumps(dict(mode=mode, recipe=recipe, import_to_build_s=round(t0 - t_import, 1),
                      first_step=({k: round(v, 1) for k, v in phases.items()}), compile_and_warmup_s=round(warm_s, 1),
                      losses=[round(x, 4) for x in losses], median_ms=round(statistics.median(ms), 2),
                      min_ms=round(min(ms), 2), compile_times=keys, peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2))))

sys.path.insert(0, "benchmarks")
from step_time import PROFILED_STEPS, kernel_categories
from torch.profiler import ProfilerActivity, profile
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for i in range(PROFILED_STEPS):
        train_step(runner, stream.next_step(), opts, 10, wl, r, 1)
    sync()
ev = prof.key_averages()
print(ev.table(sort_by="self_cuda_time_total", row_limit=45, max_name_column_width=110), file=sys.stderr)
print(kernel_categories(ev), file=sys.stderr)
