"""Building a run's model and optimisers from a recipe and its device plan."""

import torch
import torch._functorch.config  # not loaded by `import torch`; compiled_runner sets one of its switches

from speedrun.compile_cache import key_caches_to_source
from speedrun.model.gpt import GPT, CastedLinear
from speedrun.optim.muon import Muon
from speedrun.plan import Plan
from speedrun.recipe import Recipe


def build_model(r: Recipe, plan: Plan) -> GPT:
    """The recipe's model on the plan's device; FP8 only where the plan has it (the recipe asks, the GPU can)."""
    torch.manual_seed(r.seed)
    model = GPT(r, attention=plan.attention)
    if not plan.fp8_head:
        model.lm_head.fp8_scales = None
    for module in model.modules():
        if not plan.fp8_mlp and isinstance(module, CastedLinear):
            module.fp8_dynamic = False
    model = model.to(plan.device)
    if plan.device.type == "cuda":
        for table in model.embedding_tables():
            table.bfloat16()  # embeddings are kept in bf16 on the GPU, as in the record
    return model


class SplitCompiled(torch.nn.Module):
    """The model's trunk and head compiled as two frames, called as the model is (`_orig_mod` as torch.compile's
    wrapper has it). For a sampled head: its row count changes once in a run (sampled, then full), and TorchDynamo
    compiles a frame anew for each, so in one frame the whole model would compile twice; here only the head's small
    graph does. Two frames, not a graph break inside one: at a break TorchDynamo traces the frame again from its
    start (3.9-7.0 s of a launch on lent H200s, parts 31-37), and the graphs are the same (tests/test_sampled_head.py)."""

    def __init__(self, model: GPT, **compile_options):
        super().__init__()
        self._orig_mod = model
        self.compiled_features = torch.compile(model.features, **compile_options)
        self.compiled_head_loss = torch.compile(model.head_loss, **compile_options)

    def forward(self, inputs, targets, long_blocks):
        return self.compiled_head_loss(self.compiled_features(inputs, long_blocks), targets)


def compiled_runner(model: GPT, plan: Plan, **compile_options):
    """What the plan runs: the model under torch.compile (`compile_options`: more of torch.compile's arguments), or
    the model itself."""
    if not plan.compile:
        return model
    # AOTAutograd caches a traced and partitioned joint graph only if it holds no custom autograd.Function, unless
    # told that those are safe to cache. Ours are: their forward and backward are traced into the graph that keys the
    # entry, so an edited backward is a new entry (tests/test_build.py). The FP8 MLP is one (DelayedFP8MLP): without
    # this, every launch on warm compile folders traced, partitioned and compiled the model again (warm launches of
    # fast_1gpu on an H200 4.8 and 6.5 s shorter with it, experiments part 35).
    torch._functorch.config.autograd_cache_allow_custom_autograd_functions = True
    key_caches_to_source()  # a custom op's registered backward is not in that key; the fingerprint of its source is
    if model.recipe.sampled_head_rows:
        return SplitCompiled(model, dynamic=False, **compile_options)
    return torch.compile(model, dynamic=False, **compile_options)


def build_optimizers(model: GPT, r: Recipe, compile_ns: bool = False) -> tuple[torch.optim.Adam, Muon]:
    """(Adam for head, embeddings and scalars; Muon for the block matrices), each group's `initial_lr` set for
    the schedules."""
    groups = model.param_groups()
    adam_groups = [
        dict(params=groups["head"], lr=r.lr_head),
        dict(params=groups["embed"], lr=r.lr_embed),
        dict(params=groups["scalar"], lr=r.lr_scalar),
    ]
    cuda = next(model.parameters()).is_cuda
    adam = torch.optim.Adam(adam_groups, betas=tuple(r.adam_betas), eps=r.adam_eps, fused=cuda)
    # Newton-Schulz in bf16 as in the record; float32 on CPUs, where bf16 matmuls are several times slower
    muon = Muon(groups["muon"], lr=r.muon_lr, momentum=r.muon_momentum, ns_steps=r.ns_steps,
                ns_coefficients=r.ns_coefficients, ns_dtype=torch.bfloat16 if cuda else torch.float32,
                compile_ns=compile_ns, orthogonalizer=r.orthogonalizer, normuon_beta2=r.normuon_beta2)
    for opt in (adam, muon):
        for g in opt.param_groups:
            g["initial_lr"] = g["lr"]
    return adam, muon
