"""Which run differs in test_gpu_resume: the first in the process, or any (GPU nondeterminism)?"""
import itertools, tempfile, pathlib, torch
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe
from speedrun.train import run

tmp = pathlib.Path(tempfile.mkdtemp())
r = load_recipe("tiny", {"steps": 8, "val_every": 3, "warmup_steps": 1, "val_tokens": 4096, "sample_tokens": 0})
q = lambda *a, **k: None
plan = lambda: make_plan(r, force_device="cuda")
runs = {}
runs["straight1"] = run(r, plan(), log_dir=str(tmp / "logs"), say=q)
runs["straight2"] = run(r, plan(), log_dir=str(tmp / "logs"), say=q)
runs["saving"] = run(r, plan(), log_dir=str(tmp / "logs"), say=q, save_every=4, checkpoint_dir=str(tmp))
runs["resumed"] = run(r, plan(), log_dir=str(tmp / "logs"), say=q, resume=tmp / "ckpt_tiny_step000004.pt",
                      checkpoint_dir=str(tmp / "resumed"))
runs["straight3"] = run(r, plan(), log_dir=str(tmp / "logs"), say=q)
for a, b in itertools.combinations(runs, 2):
    A, B = runs[a], runs[b]
    ld = (torch.tensor(A.train_losses) - torch.tensor(B.train_losses)).abs().max().item()
    sa, sb = A.model.state_dict(), B.model.state_dict()
    rel = lambda k: ((sb[k].float() - sa[k].float()).norm() / sa[k].float().norm().clamp_min(1)).item()
    pd, worst = max((rel(k), k) for k in sa)
    nz = sum(1 for k in sa if not torch.equal(sa[k], sb[k]))
    print(f"{a:>9} vs {b:<9} loss {ld:.2e}  param {pd:.2e} ({worst})  tensors differing {nz}/{len(sa)}")
print("losses straight1", [round(x, 5) for x in runs["straight1"].train_losses])
print("losses straight2", [round(x, 5) for x in runs["straight2"].train_losses])
