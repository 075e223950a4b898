"""Run by tests/test_distributed.py under torchrun (or alone): trains a small recipe and saves, from rank 0,
the per-step train losses, val losses and final parameters. Usage: dist_worker.py OUT.pt TRAIN VAL BATCH [fast]
("fast": with the fast recipe's model and optimiser changes, Polar Express, NorMuon, multi-token prediction, the
key offset, the tied head, the sampled softmax and the FP8 MLP with delayed scales included). Variant "stop_in_save":
checkpoints every 2 steps, rank 0 alone gets a SIGINT while writing step 2's; saves the step each rank stopped at."""

import os
import signal
import sys

import torch

from speedrun.checkpoint_keeper import CheckpointKeeper
from speedrun.distributed import init_distributed, shutdown_distributed
from speedrun.interrupt import Interrupted
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.train import run

FAST = {"smear": True, "attn_gate": True, "no_mlp_layers": [0], "orthogonalizer": "polar_express",
        "normuon_beta2": 0.95, "mtp_weights": [0.5, 0.25], "key_offset": True, "tied_head": True,
        # the head sampled for steps 0-1 (each micro-batch's own rows; the row count stays one check across ranks),
        # then the full softmax
        "sampled_head_rows": 1024, "sampled_head_end_frac": 0.5,
        # the MLP in FP8 with delayed scales (CPU reference ops): the ranks must share their maxima
        "fp8_mlp": True, "fp8_mlp_scaling": "delayed"}
VARIANTS = {"": {}, "fast": FAST, "stop_in_save": {}}


def _signal_in_rank0s_save():
    real_save = CheckpointKeeper.save

    def save(self, step, weights_only=False):
        path = real_save(self, step, weights_only)
        if step == 2 and self.trainer.plan.main:
            os.kill(os.getpid(), signal.SIGINT)  # as if it came during the write, to this rank alone
        return path
    CheckpointKeeper.save = save


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
    if variant == "stop_in_save":
        _signal_in_rank0s_save()
        try:
            run(r, plan, log_dir=out + ".logs", say=lambda *a, **k: None, save_every=2, checkpoint_dir=out + ".ckpts")
        except Interrupted as e:  # every rank must stop at the same step, or the next collective hangs
            torch.save(dict(step=e.step, world=plan.world_size), f"{out}.rank{plan.rank}")
        shutdown_distributed()
        return
    result = run(r, plan, log_dir=out + ".logs", say=lambda *a, **k: None)
    if plan.main:
        torch.save(dict(train=result.train_losses, val=result.val_losses, world=plan.world_size,
                        accum=r.grad_accum_steps(plan.world_size),
                        params={k: v.detach().clone() for k, v in result.model.state_dict().items()}), out)
    shutdown_distributed()


if __name__ == "__main__":
    main(*sys.argv[1:])
