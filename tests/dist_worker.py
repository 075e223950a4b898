"""Run by tests/test_distributed.py under torchrun (or alone): trains a small recipe and saves, from rank 0,
the per-step train losses, val losses and final parameters. Usage: dist_worker.py OUT.pt TRAIN VAL BATCH [fast|docs]
("fast": with the fast recipe's model and optimiser changes, NorMuon and cautious weight decay included, and the
value-embedding and skip gates, the bigram embedding and Adam every other step; "docs": fast with rows aligned to
document starts and documents cut into 100-token pieces in training)"""

import sys

import torch

from speedrun.recipe import load_recipe
from speedrun.train import init_distributed, make_plan, run, shutdown_distributed

FAST = {"smear": True, "attn_gate": True, "no_mlp_layers": [0], "orthogonalizer": "polar_express",
        "normuon_beta2": 0.95, "muon_weight_decay": 0.5, "ve_gate": True, "skip_gate": True, "bigram_buckets": 97,
        "adam_every": 2}
VARIANTS = {"": {}, "fast": FAST, "docs": {**FAST, "align_rows_to_docs": True, "max_doc_tokens": 100}}


def main(out, train, val, batch_tokens, variant=""):
    torch.use_deterministic_algorithms(True)
    r = load_recipe("tiny", {
        "model_dim": 64, "head_dim": 32, "num_heads": 2, "mlp_hidden": 128, "seq_len": 256, "val_seq_len": 256,
        "window_ramp_tokens": 256, "batch_tokens": int(batch_tokens), "steps": 5, "val_every": 0,
        "warmup_steps": 1, "val_tokens": 1024, "train_files": train, "val_files": val, "sample_tokens": 0,
        **VARIANTS[variant],
    })
    plan = make_plan(r, force_device="cpu")
    init_distributed(plan)
    result = run(r, plan, log_dir=out + ".logs", say=lambda *a, **k: None)
    if plan.main:
        torch.save(dict(train=result.train_losses, val=result.val_losses, world=plan.world_size,
                        accum=r.grad_accum_steps(plan.world_size),
                        params={k: v.detach().clone() for k, v in result.model.state_dict().items()}), out)
    shutdown_distributed()


if __name__ == "__main__":
    main(*sys.argv[1:])
