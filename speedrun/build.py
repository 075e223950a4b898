"""Building a run's model and optimisers from a recipe and its device plan."""

import torch
from torch import nn

from speedrun.model.gpt import GPT, CastedLinear, Regions
from speedrun.optim.muon import Muon
from speedrun.plan import Plan
from speedrun.recipe import Recipe


def build_model(r: Recipe, plan: Plan) -> GPT:
    """The recipe's model on the plan's device; FP8 only where the plan has it (the recipe asks, the GPU can)."""
    torch.manual_seed(r.seed)
    model = GPT(r, attention=plan.attention)
    if not plan.fp8_head:
        model.lm_head.fp8_scales = None
    if not plan.fp8_mlp:
        for module in model.modules():
            if isinstance(module, CastedLinear):
                module.fp8_dynamic = False
    model = model.to(plan.device)
    if plan.device.type == "cuda":
        for table in model.embedding_tables():
            table.bfloat16()  # embeddings are kept in bf16 on the GPU, as in the record
    return model


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


# Dynamo counts compiled versions per code object: every block shares Block.forward, and its layouts (attention or
# not, MLP or not, value embeddings, key offset, skip input) times training / validation / sampling lengths pass the
# default of 8, after which it would run the blocks uncompiled.
RECOMPILE_LIMIT = 64


class CompiledRegions(nn.Module):
    """The model compiled by region: the prologue (embeddings, masks), each block, and the output (head and loss)
    compiled apart, joined by the model's own eager `forward`. Blocks of one layout share one compiled graph, so
    a launch compiles a few blocks instead of all of them as one graph (see experiments part 10 for the time).
    Holds the model as `_orig_mod`, like torch.compile's wrapper: `speedrun.step.uncompiled` finds it there."""

    def __init__(self, model: GPT, backend: str = "inductor"):
        super().__init__()
        self._orig_mod = model
        import torch._dynamo

        dynamo = torch._dynamo.config
        dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
        compiled = lambda fn: torch.compile(fn, backend=backend, dynamic=False)
        # A tuple, not a ModuleList: the compiled wrappers must not register the blocks a second time.
        self.regions = Regions(compiled(model.prologue), tuple(compiled(b) for b in model.blocks),
                               compiled(model.output))

    def forward(self, inputs, targets, long_blocks):
        return self._orig_mod(inputs, targets, long_blocks, regions=self.regions)


def compile_model(model: GPT, compile: bool) -> nn.Module:
    """What runs the training and validation steps: the model compiled by region, or the model itself."""
    return CompiledRegions(model) if compile else model
