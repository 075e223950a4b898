"""The upstream NanoGPT speedrun's record logs (program source, a line of 100 '=', environment dump, step lines) read
as runs in `speedrun stats` and `speedrun plot`, beside our own logs.

Fixtures in tests/data/upstream/<record folder>/: three complete runs of a recent version (082725_FA3: no
train_loss, `peak memory allocated: X MiB reserved: Y MiB`, an 8x H100 nvidia-smi table) and two that stopped (one
after its step-20 validation, one before its first validation after step 0); one complete run of a 2024 version
(110624_ShortcutsTweaks: `train_loss` before `train_time`, `step_avg:nanms`, the clock restarted at step 10,
`peak memory consumption: X MiB`). The fake program sources hold look-alike step lines that must not be read.
"""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest
import scipy.stats
from logfactory import hand_log

from speedrun.plot import plot_logs
from speedrun.runlog import UPSTREAM_SEPARATOR, LogError, parse_log
from speedrun.stats import stats_report, summarize

DATA = Path(__file__).parent / "data" / "upstream"
FA3 = DATA / "082725_FA3"
OLD = DATA / "110624_ShortcutsTweaks" / "4a71cc92-0f43-4058-a033-23e85c1e98f1.txt"
DONE = {"17e712ee-7cf8-44c9-a784-3762e61b174c.txt": 3.2782, "1d46fee6-b32c-48de-bd61-0a326442ec4e.txt": 3.2769,
        "27d1e0d2-df15-41a9-9496-492a21943fb1.txt": 3.2790}
STOPPED = FA3 / "9b3e5d07-6c1a-4f0e-b2d4-8a61c0f3e912.txt"  # last validation at step 20 of 40
EARLY = FA3 / "e04a7f19-3b8c-4d25-9f6e-71d2a5c4b038.txt"  # only step 0 validated
H100 = "8x NVIDIA H100 80GB HBM3"


def test_recent_version_parses():
    log = parse_log(FA3 / "17e712ee-7cf8-44c9-a784-3762e61b174c.txt")
    assert (log.source, log.status, log.steps, log.recipe) == (
        "upstream", "complete", 40, {"name": "upstream-082725_FA3", "steps": 40})
    # the program source's look-alike lines (val_loss:9.9999, peak memory 1 MiB) come before the separator
    assert [s for s, *_ in log.val] == [0, 10, 20, 30, 40] and log.val[0] == (0, 10.8258, 0.0)
    assert log.val[-1][1] == 3.2782 and log.final_val_loss == 3.2782
    assert [s for s, *_ in log.train_steps] == list(range(1, 41))
    assert all(loss is None for *_, loss in log.train_steps)  # this version logs no train loss
    assert (log.peak_allocated_mib, log.peak_reserved_mib) == (34362, 49577)
    assert log.environment.startswith("Running Python 3.12.7") and "NVIDIA-SMI" in log.environment
    assert "step:" not in log.environment and UPSTREAM_SEPARATOR not in log.environment


def test_2024_version_parses():
    log = parse_log(OLD)
    assert log.status == "complete" and log.recipe["name"] == "upstream-110624_ShortcutsTweaks"
    assert log.val == [(0, 10.8258, 327.0), (20, log.val[1][1], log.val[1][2]), (40, 3.2794, 4143.0)]
    assert log.train_steps[0] == (1, 12000.0, 10.3032)  # train_loss before train_time, step_avg:nanms
    assert len(log.train_steps) == 40 and all(loss is not None for *_, loss in log.train_steps)
    assert (log.peak_allocated_mib, log.peak_reserved_mib) == (37474, None)  # 'peak memory consumption'


def test_stopped_runs_are_incomplete_with_their_last_real_validation():
    stopped, early = parse_log(STOPPED), parse_log(EARLY)
    assert stopped.status == early.status == "incomplete"  # no end line upstream: no val at step 40
    assert stopped.final_val_loss is None and stopped.last_val[:2] == (20, 4.2232)
    assert early.final_val_loss is None and early.last_val is None and early.val == [(0, 10.8258, 0.0)]


def test_stats_lists_and_groups_upstream_runs():
    s = summarize([str(DATA)])
    rows = {r.path.name: r for r in s.runs}
    assert len(rows) == 6 and s.overall.n == 4
    for name, final in DONE.items():
        r = rows[name]
        assert (r.status, r.counted, r.final_val_loss, r.recipe, r.commit, r.device) == (
            "complete", True, final, "upstream-082725_FA3", "unknown", H100)
        assert r.training_time_s == pytest.approx(r.log.val[-1][2] / 1000) and 4.2 < r.training_time_s < 4.5
    assert rows[OLD.name].device == H100 and rows[OLD.name].training_time_s == 4.143
    assert rows[STOPPED.name].reason.startswith("upstream log without a val loss at its last step 40")
    assert rows[STOPPED.name].training_time_s == pytest.approx(3.044)  # its last step's time
    by_label = {s.labels[k]: g for k, g in s.groups.items()}
    assert set(by_label) == {"upstream-082725_FA3 @ unknown", "upstream-110624_ShortcutsTweaks @ unknown"}
    fa3 = by_label["upstream-082725_FA3 @ unknown"]
    assert fa3.n == 3 and fa3.p_value == scipy.stats.ttest_1samp(list(DONE.values()), 3.28, alternative="less").pvalue

    text, ok = stats_report([str(DATA)])
    assert ok
    table = {line.split()[0]: line for line in text.splitlines() if line.strip().endswith(".txt") or ".txt " in line}
    row = table["17e712ee-7cf8-44c9-a784-3762e61b174c.txt"]
    assert "upstream-082725_FA3" in row and "3.2782" in row and "40/40" in row and row.rstrip().endswith("complete")
    assert "4.3 @ 40" in row  # time to 3.28: the step-40 validation, at 4.3 s
    assert "last val 4.2232 @ step 20" in table[STOPPED.name] and "not counted" in table[STOPPED.name]
    assert "—" in table[EARLY.name] and "10.8258" not in text  # step 0's loss is never shown as a result
    assert "upstream-082725_FA3 @ unknown: n = 3" in text


def test_ours_and_upstream_in_one_table(tmp_path):
    ours = [hand_log(tmp_path / "ours" / f"{loss}.txt", loss, gpu="NVIDIA H100 80GB HBM3 x 1")
            for loss in (3.25, 3.26)]
    s = summarize([str(tmp_path / "ours"), str(FA3)])
    assert s.overall.n == 5 and len(s.groups) == 2
    assert sorted(s.labels.values()) == ["tiny steps=100 @ unknown", "upstream-082725_FA3 @ unknown"]
    assert {r.path for r in s.counted} >= set(ours)
    assert {r.device for r in s.counted} == {"1x NVIDIA H100 80GB HBM3", H100}


def test_detection(tmp_path):
    # our own log whose code section holds the separator and step lines: still ours, its steps section only
    text = hand_log(tmp_path / "ours.txt", 3.2).read_text()
    code = f"=== code: speedrun/x.py ===\n{UPSTREAM_SEPARATOR}\nstep:0/9 val_loss:1.0000 train_time:0ms step_avg:0ms\n"
    (tmp_path / "ours.txt").write_text(text.replace("=== steps ===\n", code + "=== steps ===\n"))
    log = parse_log(tmp_path / "ours.txt")
    assert log.source == "speedrun" and log.steps == 100 and log.final_val_loss == 3.2
    # the separator without step lines after it: malformed, and said so
    (tmp_path / "nosteps.txt").write_text(f"import torch\n{UPSTREAM_SEPARATOR}\nRunning PyTorch 2.9\n")
    with pytest.raises(LogError, match=r"nosteps.txt: has the upstream .* but no step lines after it"):
        parse_log(tmp_path / "nosteps.txt")
    # step lines without the separator: neither format
    (tmp_path / "bare.txt").write_text("step:0/10 val_loss:10.8 train_time:0ms step_avg:0ms\n")
    with pytest.raises(LogError, match="bare.txt: not a speedrun run log"):
        parse_log(tmp_path / "bare.txt")
    # the smallest upstream log: no nvidia-smi table (the GPU is unknown, not a CPU), complete at its last step
    (tmp_path / "min.txt").write_text(f"print('hi')\n{UPSTREAM_SEPARATOR}\nRunning PyTorch 2.9\n{UPSTREAM_SEPARATOR}\n"
                                      "step:0/2 val_loss:10.8258 train_time:0ms step_avg:0.03ms\n"
                                      "step:1/2 train_time:90ms step_avg:90.00ms\n"
                                      "step:2/2 train_time:180ms step_avg:90.00ms\n"
                                      "step:2/2 val_loss:9.1000 train_time:185ms step_avg:92.50ms\n")
    (run,) = summarize([str(tmp_path / "min.txt")]).runs
    assert (run.status, run.counted, run.final_val_loss, run.training_time_s, run.device) == (
        "complete", True, 9.1, 0.185, "unknown")
    assert run.log.environment == "Running PyTorch 2.9"
    # a half-written last line is skipped; compressed logs read the same
    cut = tmp_path / "rec" / "cut.txt"
    cut.parent.mkdir()
    cut.write_text(STOPPED.read_text() + "step:28/40 train_time:3.1.4ms step_avg:1ms\nstep:29/40 train_ti")
    assert parse_log(cut).train_steps == parse_log(STOPPED).train_steps
    packed = tmp_path / "rec" / "run.txt.xz"
    packed.write_bytes(lzma.compress(OLD.read_bytes()))
    assert parse_log(packed).val == parse_log(OLD).val and parse_log(packed).recipe["name"] == "upstream-rec"


def test_recipe_name_from_the_folder(tmp_path):
    old_logs = tmp_path / "011225_LearnableAttnScale" / "old_logs"
    old_logs.mkdir(parents=True)
    shutil.copy(OLD, old_logs / "a.txt")
    shutil.copy(OLD, tmp_path / "011225_LearnableAttnScale" / "b.txt")
    names = {r.path.name: r.recipe for r in summarize([str(tmp_path)]).runs}
    assert names == {"a.txt": "upstream-011225_LearnableAttnScale/old_logs",
                     "b.txt": "upstream-011225_LearnableAttnScale"}


def test_plot_draws_upstream_runs(tmp_path):
    fig = plot_logs([str(DATA)], str(tmp_path / "up.png"))
    assert (tmp_path / "up.png").stat().st_size > 10_000
    lines = {l.get_label(): l for l in fig.axes[1].get_lines()}
    assert "upstream-082725_FA3 (17e712ee): final 3.2782" in lines
    assert lines["upstream-082725_FA3 (17e712ee): final 3.2782"].get_linestyle() == "-"
    stopped = lines["upstream-082725_FA3 (9b3e5d07) (incomplete): last 4.2232 at step 20/40"]
    assert stopped.get_linestyle() == ":"
    assert not [k for k in lines if "e04a7f19" in k]  # no val loss after step 0: nothing to draw, left out
    assert "upstream-110624_ShortcutsTweaks (4a71cc92): final 3.2794" in lines
    assert "target 3.28" in lines
    (old,) = [l for l in fig.axes[0].get_lines() if l.get_label().startswith("upstream-110624")]
    assert list(old.get_xdata()) == pytest.approx([0.327, 1.381, 4.143])  # seconds


def test_cli_reads_upstream_logs(capsys):
    from speedrun.cli import main

    assert main(["stats", str(FA3)]) == 0
    out = capsys.readouterr().out
    assert "upstream-082725_FA3" in out and "VERDICT: mean 3.2780 < 3.28" in out


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_a_diverged_run_is_failed_not_a_result(tmp_path, bad):
    # a copy of a complete upstream run whose last val loss diverged: failed, left out of the stats, drawn without
    # breaking the plot's axis
    name = next(iter(DONE))
    text = (FA3 / name).read_text().replace("val_loss:3.2782", f"val_loss:{bad}")
    (tmp_path / "082725_FA3").mkdir()
    (tmp_path / "082725_FA3" / name).write_text(text)
    log = parse_log(tmp_path / "082725_FA3" / name)
    assert log.status == "failed" and log.failure == f"val loss {float(bad)} at step 40" and log.final_val_loss is None
    shutil.copy(FA3 / "1d46fee6-b32c-48de-bd61-0a326442ec4e.txt", tmp_path / "082725_FA3")
    summary = summarize([str(tmp_path)], 3.28)
    assert [r.final_val_loss for r in summary.counted] == [3.2769]
    fig = plot_logs([str(tmp_path)], str(tmp_path / "p.png"))
    bottom, top = fig.axes[0].get_ylim()
    assert 3.0 < bottom < top < 11.5
