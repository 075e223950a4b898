"""benchmarks/time_to_target.py: variant parsing, the per-run summary read from a log, and the table."""

from __future__ import annotations

import pytest
from benchscript import load_benchmark
from logfactory import runlog

ttt = load_benchmark("time_to_target")


def test_parse_variant_keeps_list_values_whole():
    assert ttt.parse_variant("mtp:fast_1gpu,steps=1300,mtp_weights=[0.5,0.25],seed=1") == (
        "mtp", "fast_1gpu", ["steps=1300", "mtp_weights=[0.5,0.25]", "seed=1"])
    assert ttt.parse_variant("base:record21_1gpu") == ("base", "record21_1gpu", [])
    assert ttt.parse_variant("s:fast_1gpu,skip_pairs=[[4,7],[1,3]],seed=7") == (
        "s", "fast_1gpu", ["skip_pairs=[[4,7],[1,3]]", "seed=7"])


def test_seeds_repeat_every_variant_seed_by_seed():
    variants = [ttt.parse_variant("a:fast_1gpu,steps=10"), ttt.parse_variant("b:record21_1gpu")]
    assert ttt.with_seeds(variants, 1) == variants
    assert ttt.with_seeds(variants, 2) == [
        ("a-s0", "fast_1gpu", ["steps=10", "seed=0"]), ("b-s0", "record21_1gpu", ["seed=0"]),
        ("a-s1", "fast_1gpu", ["steps=10", "seed=1"]), ("b-s1", "record21_1gpu", ["seed=1"])]
    with pytest.raises(SystemExit, match="variant c sets its own seed"):
        ttt.with_seeds([ttt.parse_variant("c:tiny,seed=3")], 2)
    # seeds the recipe was not tuned on: 1 and 2, or 3 alone
    assert ttt.with_seeds(variants[:1], 2, first=1) == [("a-s1", "fast_1gpu", ["steps=10", "seed=1"]),
                                                         ("a-s2", "fast_1gpu", ["steps=10", "seed=2"])]
    assert ttt.with_seeds(variants[1:], 1, first=3) == [("b-s3", "record21_1gpu", ["seed=3"])]


def test_seeds_with_a_shared_seed_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ttt.main(["--out", str(tmp_path), "--seeds", "2", "--set", "seed=5", "a:tiny"])
    assert e.value.code == 2 and "--seeds 2 --first-seed 0 sets each run's seed: drop --set seed=..." \
        in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing started
    for bad, message in ((["--first-seed", "4", "--set", "seed=5"], "--seeds 1 --first-seed 4 sets each run's seed"),
                         (["--seeds", "2", "--first-seed", "-1"], "--first-seed must be >= 0")):
        with pytest.raises(SystemExit) as e:
            ttt.main(["--out", str(tmp_path), *bad, "a:tiny"])
        assert e.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_summary_and_table_from_logs(tmp_path):
    """curve(3.0, 100 steps, val every 25, 10 ms a step): 3.122 @ 75, 3.0 @ 100."""
    runlog(tmp_path / "a", 3.0)
    runlog(tmp_path / "b", 3.3, end=None, stop_at=50)
    a = ttt.summarize("a", "tiny", ["steps=100"], tmp_path / "a", 0, 3.2, concurrent=False)
    assert a["status"] == "complete" and a["final_val"] == 3.0 and a["steps"] == 100
    assert (a["to_target_step"], a["to_target_s"]) == (75, 0.75) and a["ms_per_step"] == 10.0
    b = ttt.summarize("b", "tiny", [], tmp_path / "b", 1, 3.2, concurrent=True)
    assert b["status"] == "incomplete" and b["to_target_s"] is None
    missing = ttt.summarize("c", "tiny", [], tmp_path / "c", 2, 3.2, concurrent=False)
    assert missing["status"] == "no log"
    text = ttt.table([a, b, missing], 3.2)
    assert "| a | tiny steps=100 | 100 | 3.0000 | 1.0 | 10.0 | 0.8 @ 75 |" in text
    assert "(concurrent)" in text and "not reached" in text and "no log" in text


def test_a_variant_that_fails_in_a_used_out_folder_is_failed_not_its_earlier_log(tmp_path, capsys):
    """An --out used before holds the variant's earlier log: a launch that fails (here a misspelt key) showed that
    log's numbers as its own, "complete". Its row is now the launch's own: no log, with the error."""
    runlog(tmp_path / "a", 3.0)  # the earlier run's
    assert ttt.main(["--out", str(tmp_path), "--target", "3.2", "--set", "stepz=3", "a:tiny"]) == 1
    (row,) = __import__("json").loads((tmp_path / "results.json").read_text())
    assert row["status"] == "no log" and "stepz" in row["error"] and row.get("final_val") is None
    out = capsys.readouterr().out
    assert "| a | tiny |" in out and "complete" not in out.split("| variant |")[1]


@pytest.mark.parametrize("target", ["inf", "nan", "0", "-1"])
def test_a_target_no_val_loss_can_be_is_refused_as_stats_refuses_it(tmp_path, capsys, target):
    with pytest.raises(SystemExit) as e:
        ttt.main(["--out", str(tmp_path), "--target", target, "a:tiny"])
    assert e.value.code == 2 and f"argument --target: {target!r} must be a val loss: a finite number above 0" in (
        capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def test_sigterm_stops_running_variants_and_still_writes_the_table(tmp_path, monkeypatch, capsys):
    """A `timeout` around the script must not lose the runs that finished, nor leave trainers running on the GPU."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    started = []

    def fake_launch(label, recipe, sets, common, out, print_every):
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        if label == "done":
            runlog(folder, 3.0)  # a finished run's log
            proc = subprocess.Popen([sys.executable, "-c", "pass"])
        else:
            proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        started.append(proc)
        return proc, open(folder / "console.txt", "w"), set()

    monkeypatch.setattr(ttt, "launch", fake_launch)
    # `timeout` signals the process, then its process group: the second copy came while the script reported the first
    stopping, real_strftime = threading.Event(), time.strftime

    def strftime(fmt):
        if stopping.is_set():
            stopping.clear()
            os.kill(os.getpid(), signal.SIGTERM)
        return real_strftime(fmt)

    monkeypatch.setattr(ttt.time, "strftime", strftime)
    timer = threading.Timer(6.0, lambda: (stopping.set(), os.kill(os.getpid(), signal.SIGTERM)))
    timer.start()
    try:
        rc = ttt.main(["--out", str(tmp_path), "--target", "3.2", "done:tiny", "slow:tiny", "never:tiny"])
    finally:
        timer.cancel()
    assert rc == 1
    assert len(started) == 2 and all(p.poll() is not None for p in started)  # the sleeper was stopped
    rows = {r["label"]: r for r in __import__("json").loads((tmp_path / "results.json").read_text())}
    assert set(rows) == {"done", "slow"}  # "never" was not started
    assert rows["done"]["status"] == "complete" and rows["done"]["final_val"] == 3.0
    assert rows["slow"]["status"] == "no log"
    out = capsys.readouterr().out
    assert "SIGTERM: stopping 1 running variant(s); not started: never" in out and "| done |" in out


def test_each_variant_writes_logs_and_checkpoints_in_its_own_folder(tmp_path, monkeypatch):
    """Each variant gets its own log and checkpoint folder, so that a variant's files are found in one place."""
    started = []

    class FakeProc:
        def __init__(self, cmd, **kw):
            started.append(cmd)

    monkeypatch.setattr(ttt.subprocess, "Popen", FakeProc)
    for label in ("a", "b"):
        _, console, _ = ttt.launch(label, "fast_1gpu", ["steps=3"], ["val_every=0"], tmp_path, 250)
        console.close()
    folders = [(cmd[cmd.index("--log-dir") + 1], cmd[cmd.index("--checkpoint-dir") + 1]) for cmd in started]
    assert folders == [(str(tmp_path / v), str(tmp_path / v / "checkpoints")) for v in ("a", "b")]
    assert started[0][-4:] == ["--set", "val_every=0", "--set", "steps=3"]
