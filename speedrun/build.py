"""Building a run's model and optimisers from a recipe and its device plan."""

import torch

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


def compiled_runner(model: GPT, plan: Plan):
    """What the plan runs: the model under torch.compile, or the model itself."""
    if not plan.compile:
        return model
    configure_compiler()
    return torch.compile(model, dynamic=False)


def configure_compiler() -> None:
    """The compile settings of every process that compiles for a run (the trainer, and its side process)."""
    # AOTAutograd caches a traced and partitioned joint graph only if it holds no custom autograd.Function, unless
    # told that those are safe to cache. Ours are: their forward and backward are traced into the graph that keys the
    # entry, so an edited backward is a new entry (tests/test_build.py). The FP8 MLP is one (DelayedFP8MLP): without
    # this, every launch on warm compile folders traced, partitioned and compiled the model again (warm launches of
    # fast_1gpu on an H200 4.8 and 6.5 s shorter with it, experiments part 35).
    import torch._functorch.config  # not imported by `import torch` alone (a side process compiles nothing else first)

    torch._functorch.config.autograd_cache_allow_custom_autograd_functions = True
    key_caches_to_source()  # a custom op's registered backward is not in that key; the fingerprint of its source is


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
