"""Optional metrics sinks: TensorBoard (event file read back) and Weights & Biases (offline run read back)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speedrun.errors import SpeedrunError
from speedrun.metrics import Metrics, open_metrics

CONFIG = {"recipe": "tiny", "steps": 3, "lr": 0.02}


def _log_run(m: Metrics) -> None:
    for s in (1, 2, 3):
        m.step(s, train_loss=5.0 - s, tokens_per_s=1000.0 * s, step_ms=10.0 + s)
    m.val(3, val_loss=1.5, train_time_ms=2500.0)
    m.close()


def test_no_sinks_is_a_noop():
    m = open_metrics("run", CONFIG)
    _log_run(m)
    m.close()  # twice is fine


def test_import_loads_neither_package():
    code = "import sys, speedrun.metrics; print([m for m in ('wandb', 'tensorboard') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module, kwargs, extra", [
    ("wandb", {"wandb_project": "p"}, "wandb"),
    ("torch.utils.tensorboard", {"tensorboard_dir": "tb"}, "tensorboard"),
])
def test_missing_package_is_one_line(monkeypatch, tmp_path, module, kwargs, extra):
    monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules makes `import` fail
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpeedrunError) as e:
        open_metrics("run", CONFIG, **kwargs)
    assert str(e.value) == f"--{extra} needs the {extra} package: pip install 'speedrun[{extra}]'"
    assert not (tmp_path / "tb").exists()


def test_tensorboard_event_file_reads_back(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _log_run(open_metrics("run1", CONFIG, tensorboard_dir=str(tmp_path)))
    acc = EventAccumulator(str(tmp_path / "run1"), size_guidance={"tensors": 0})
    acc.Reload()

    def read(tag):
        return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]

    assert read("train/loss") == [(1, 4.0), (2, 3.0), (3, 2.0)]
    assert read("train/tokens_per_s") == [(1, 1000.0), (2, 2000.0), (3, 3000.0)]
    assert read("train/step_ms") == [(1, 11.0), (2, 12.0), (3, 13.0)]
    assert read("val/loss") == [(3, 1.5)]
    assert read("val/train_time_s") == [(3, 2.5)]
    text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(text.strip("`\n")) == CONFIG


def _wandb_records(path):
    """The records of a small offline run file: wandb's LevelDB-style log (7-byte file header, then records of
    crc32 4 | length 2 | type 1 | protobuf). Under one 32 KiB block every record is whole (type 1, FULL)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B" and len(data) < 32768, "wandb's offline run format changed; update this reader"
    pos = 7
    while pos + 7 <= len(data):
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if kind == 0 or pos + 7 + length > len(data):  # zero padding at the end of the block, or still being written
            break
        assert kind == 1
        record = pb.Record()
        record.ParseFromString(data[pos + 7:pos + 7 + length])
        yield record
        pos += 7 + length


def test_wandb_offline_run_reads_back(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    metrics = open_metrics("run0", CONFIG, wandb_project="speedrun-test")
    metrics.start("run1")  # the run's log is named: the wandb run takes its name (a second run record)
    _log_run(metrics)

    [run_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    # wandb's service process may still be writing the file when finish() returns on a loaded machine (seen once in a
    # full CI run: no run record yet): read until it is there, for up to 30 s
    deadline = time.monotonic() + 30
    while True:
        records = list(_wandb_records(run_file))
        runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        if len(runs) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(runs) == 2, f"run records: {len(runs)}; record types: {[r.WhichOneof('record_type') for r in records]}"
    run = runs[0]
    assert (run.project, run.display_name, runs[1].display_name) == ("speedrun-test", "run0", "run1")
    assert {u.key: json.loads(u.value_json) for u in run.config.update if u.key in CONFIG} == CONFIG
    history = [{"/".join(i.nested_key or [i.key]): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    assert [h["_step"] for h in history] == [1, 2, 3]
    assert [h["train/loss"] for h in history] == [4.0, 3.0, 2.0]
    assert history[-1]["train/tokens_per_s"] == 3000.0 and history[-1]["train/step_ms"] == 13.0
    assert history[-1]["val/loss"] == 1.5 and history[-1]["val/train_time_s"] == 2.5
    assert any(r.WhichOneof("record_type") == "exit" for r in records)  # close() finished the run


def test_wandb_init_error_is_one_line(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")

    def refuse(**kwargs):
        raise wandb.errors.UsageError("No API key configured.\nUse `wandb login` to log in.")

    monkeypatch.setattr(wandb, "init", refuse)
    with pytest.raises(SpeedrunError, match=r"^--wandb: No API key configured. Use `wandb login` to log in. \(or "
                                            r"WANDB_MODE=offline: a local run, synced later with `wandb sync`\)$"):
        open_metrics("run1", CONFIG, wandb_project="p", tensorboard_dir=str(tmp_path))


def test_a_training_run_sends_its_numbers_to_tensorboard(tmp_path):
    """run(metrics=...) as `speedrun train --tensorboard DIR` wires it: every step's loss and each val loss."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from speedrun.plan import make_plan
    from speedrun.recipe import load_recipe
    from speedrun.train import run

    r = load_recipe("tiny", {"model_dim": 64, "num_heads": 2, "seq_len": 256, "val_seq_len": 256,
                             "window_ramp_tokens": 256, "batch_tokens": 256, "val_tokens": 512, "steps": 3,
                             "val_every": 0, "warmup_steps": 0, "sample_tokens": 0})
    metrics = open_metrics("tiny", r.to_dict(), tensorboard_dir=str(tmp_path / "tb"))
    result = run(r, make_plan(r, force_device="cpu"), log_dir=str(tmp_path / "logs"), say=lambda *a: None,
                 metrics=metrics)
    # one folder, named as the run's log (`<time>_<recipe>_<run id>`), so the two are matched by name
    assert [p.name for p in (tmp_path / "tb").iterdir()] == [Path(result.log_path).stem]
    events = EventAccumulator(str(tmp_path / "tb" / Path(result.log_path).stem))
    events.Reload()
    train = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [s for s, _ in train] == [1, 2, 3]
    assert [v for _, v in train] == pytest.approx(result.train_losses, rel=1e-6)
    val = events.Scalars("val/loss")
    assert [e.step for e in val] == [s for s, _ in result.val_losses]
    assert [e.value for e in val] == pytest.approx([v for _, v in result.val_losses], rel=1e-6)


def test_each_training_run_gets_its_own_tensorboard_folder(monkeypatch, tmp_path, capsys):
    """Opened before any work (a missing package stops the run there), named <time>_<recipe> until the run's log
    exists, then as the log: runs of one recipe never append to one folder."""
    import re

    import speedrun.metrics
    from speedrun.cli import main

    names = []

    def stop(run_name, config, wandb_project=None, tensorboard_dir=None):
        names.append((run_name, tensorboard_dir))
        raise SpeedrunError("stopped before training")

    monkeypatch.setattr(speedrun.metrics, "open_metrics", stop)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--recipe", "tiny", "--device", "cpu", "--tensorboard", "tb"]) == 2
    assert "stopped before training" in capsys.readouterr().err
    [(name, folder)] = names
    assert re.fullmatch(r"\d{8}-\d{6}_tiny", name) and folder == "tb"
    assert not (tmp_path / "tb").exists()  # nothing written before the run's first number


def test_a_tensorboard_folder_that_cannot_be_written_stops_before_any_work(tmp_path):
    pytest.importorskip("tensorboard")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SpeedrunError, match=r"^--tensorboard .*afile/tb: .*afile is a file, not a folder$"):
        open_metrics("run", CONFIG, tensorboard_dir=str(tmp_path / "afile" / "tb"))
