"""Building a run's model and optimisers from a recipe and its device plan."""

import torch

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


# Inductor compiles each element-wise kernel with one launch configuration instead of trying two: a fresh launch
# spends most of its time compiling Triton kernels (experiments part 31: 38-42 s waiting on them).
INDUCTOR_OPTIONS = {"triton.autotune_pointwise": False}


def compiled_runner(model: GPT, plan: Plan):
    """What the plan runs: the model under torch.compile, or the model itself."""
    return torch.compile(model, dynamic=False, options=INDUCTOR_OPTIONS) if plan.compile else model


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
