"""Building a run's model and optimisers from a recipe and its device plan."""

import types

import torch

from speedrun.model.gpt import GPT, Block, CastedLinear
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

# With nested compile regions, Inductor's in-place and reused buffers gave wrong gradients on the CPU (torch 2.11 and
# 2.13; experiments session31/cpu_region_kinds_probe.py): either one on was enough. Both stay off with regions.
REGION_INDUCTOR_OPTIONS = {"inplace_buffers": False, "allow_buffer_reuse": False}


def block_kind(model: GPT, layer: int) -> tuple[bool, ...]:
    """What makes blocks compile differently: attention, MLP, key offset, a value embedding, the long window, and
    being the first block, whose input x is x0 itself: TorchDynamo traces the two as one input there, and a region
    traced so, stamped onto a later block of the same kind, got the wrong arguments (CPU, torch 2.13)."""
    block = model.blocks[layer]
    return (block.attn is not None, block.mlp is not None, block.attn is not None and block.attn.key_offset,
            model.ve_table[layer] is not None, model.long_layer[layer], layer == 0)


def share_block_regions(model: GPT) -> int:
    """Mark each block's forward as a nested compile region shared with the blocks of its kind, so torch.compile
    compiles one block of each kind and reuses it for the rest. TorchDynamo keys a region on its code object, and
    one region for all blocks stamped one kind's graph onto another (part 30), so each kind gets a renamed copy of
    Block.forward's code. Returns the number of kinds."""
    regions = {}
    for layer, block in enumerate(model.blocks):
        kind = block_kind(model, layer)
        if kind not in regions:
            name = "block_" + "".join(str(int(k)) for k in kind)
            code = Block.forward.__code__.replace(co_name=name)
            regions[kind] = torch.compiler.nested_compile_region(
                types.FunctionType(code, Block.forward.__globals__, name, Block.forward.__defaults__))
        block.region = regions[kind]
    return len(regions)


def compiled_runner(model: GPT, plan: Plan):
    """What the plan runs: the model under torch.compile with its blocks as shared regions, or the model itself."""
    if not plan.compile:
        return model
    share_block_regions(model)
    return torch.compile(model, dynamic=False, options={**INDUCTOR_OPTIONS, **REGION_INDUCTOR_OPTIONS})


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
