"""benchmarks/val_window.py on the CPU: a tiny checkpoint scored at its trained window and at twice it, every mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_val_window_scores_every_mode(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = lambda *args: subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                                       timeout=300)
    train = run("-m", "speedrun", "train", "--recipe", "tiny", "--set", "steps=3", "--set", "val_every=0",
                "--set", "sample_tokens=0", "--checkpoint-dir", "ck", "--log-dir", "logs")
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    ckpt = next((tmp_path / "ck").glob("*.pt"))
    out = tmp_path / "rows.json"
    done = run(str(REPO / "benchmarks" / "val_window.py"), str(ckpt), "--val-files", "demo", "--device", "cpu",
               "--factors", "1", "2", "--json", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())
    trained = rows[0]["window_blocks"]
    assert [(r["mode"], r["window_blocks"], r["short_blocks"]) for r in rows] == [
        ("plain", trained, trained // 2), ("plain", 2 * trained, trained), ("plain-long", 2 * trained, trained // 2),
        ("yarn", 2 * trained, trained), ("yarn-long", 2 * trained, trained // 2), ("yarn+temp", 2 * trained, trained)]
    assert all(r["val_loss"] > 0 for r in rows)
    assert rows[3]["val_loss"] != rows[1]["val_loss"]  # YaRN's rescaled frequencies change the scores
