# Part 55: the ATen ops of one backward pass that run outside Inductor's generated code (eager ops, and the extern
# calls Inductor makes) for a small `fast` model through the trainer's compiled runner, on a CPU, each listed with
# the first three operands of 4,096 elements or more. Usage, from a tree (the loss kernel in Triton's interpreter):
#   PYTHONPATH=$PWD TRITON_INTERPRET=1 python eager_audit.py STEP   (99: the full softmax; 0: the sampled head)
# Dynamo runs frames eagerly while a dispatch mode is active, so the forward pass runs before the mode is entered.
import collections
import sys
from types import SimpleNamespace

import torch
import torch._functorch.config  # noqa: F401 (speedrun.build sets an option in it)
from torch.utils._python_dispatch import TorchDispatchMode

import speedrun.kernels.softcap_ce as kernels
from speedrun.build import build_optimizers, compiled_runner
from speedrun.model.gpt import GPT
from speedrun.recipe import load_recipe

kernel = kernels.softcap_cross_entropy_with_grad  # float32 in the interpreter, cast by torch (tests/test_fp8.py)


def float32_then_cast(*args, grad_dtype, **kwargs):
    losses, grad = kernel(*args, grad_dtype=torch.float32, **kwargs)
    return losses, grad.to(grad_dtype)


class BigOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = [a for a in args if isinstance(a, torch.Tensor)]
        flat += [x for a in args if isinstance(a, (list, tuple)) for x in a if isinstance(x, torch.Tensor)]
        flat += [out] if isinstance(out, torch.Tensor) else []
        big = [t for t in flat if t.numel() >= 4096][:3]
        if big:
            self.ops[(str(func), tuple((tuple(t.shape), t.stride(), str(t.dtype)[6:]) for t in big))] += 1
        return out


def main(step: int) -> None:
    kernels.softcap_cross_entropy_with_grad = float32_then_cast
    r = load_recipe("fast", ["num_layers=4", "window_pattern='LSSL'", "no_attn_layers=[0]", "no_mlp_layers=[0]",
                             "value_embeds=2", "model_dim=64", "head_dim=32", "num_heads=2", "mlp_hidden=256",
                             "seq_len=512", "val_seq_len=512", "window_ramp_tokens=256", "batch_tokens=512",
                             "sampled_head_rows=1024", "steps=100"])
    torch.manual_seed(0)
    model = GPT(r)
    torch.nn.init.normal_(model.lm_head.weight, std=0.02)
    for table in model.embedding_tables():
        table.bfloat16()  # as on the GPU (speedrun.build)
    optimizers = build_optimizers(model, r, compile_ns=True)
    run = compiled_runner(model, SimpleNamespace(compile=True))
    gen = torch.Generator().manual_seed(0)
    model.set_step(step)
    for i in range(3):  # two steps to compile, the third audited
        tokens = torch.randint(0, 2000, (r.seq_len + 1,), generator=gen)
        tokens[0] = tokens[200] = 50256
        loss = run(tokens[:-1].int(), tokens[1:].long(), 2)
        if i < 2:
            loss.backward()
            for opt in optimizers:
                opt.step()
            model.zero_grad(set_to_none=True)
    with BigOps() as mode:
        loss.backward()
    for (func, operands), n in mode.ops.items():
        print(n, func, operands)


if __name__ == "__main__":
    main(int(sys.argv[1]))
