"""`speedrun stats`: numbers equal scipy's on constructed logs; unfinished and malformed logs never count."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
from logfactory import hand_log, runlog

from speedrun.errors import SpeedrunError
from speedrun.runlog import PACKAGE_DIR, LogError, code_files, code_hash, parse_log
from speedrun.stats import format_p, stats_report, summarize

LOSSES = [3.2750, 3.2770, 3.2740, 3.2760, 3.2750]


@pytest.fixture
def five_runs(tmp_path):
    folder = tmp_path / "logs"
    for i, loss in enumerate(LOSSES):
        runlog(folder, loss, ms_per_step=10.0 + i)  # training times 1.0 .. 1.4 s
    return folder


def test_numbers_equal_scipy(five_runs):
    s = summarize([str(five_runs)], target=3.28)
    o = s.overall
    losses = [r.final_val_loss for r in s.runs]  # file order (the same values as LOSSES, maybe permuted)
    assert sorted(losses) == sorted(LOSSES)
    ref = scipy.stats.ttest_1samp(losses, 3.28, alternative="less")
    assert o.n == 5 and o.p_value == ref.pvalue and o.t == ref.statistic
    assert o.mean == pytest.approx(np.mean(LOSSES)) and o.std == pytest.approx(np.std(LOSSES, ddof=1))
    assert (o.min, o.max) == (min(LOSSES), max(LOSSES))
    times = np.array([r.training_time_s for r in s.runs])
    assert sorted(times) == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])
    half = scipy.stats.t.ppf(0.975, 4) * times.std(ddof=1) / np.sqrt(5)
    assert o.time_mean_s == pytest.approx(1.2)
    assert o.time_ci_s == pytest.approx((1.2 - half, 1.2 + half))
    assert all(r.steps_done == r.steps_planned == 100 for r in s.runs)


def test_report_text_and_verdict(five_runs):
    text, ok = stats_report([str(five_runs)], target=3.28)
    p = summarize([str(five_runs)], target=3.28).overall.p_value
    assert ok and p < 0.01
    assert f"VERDICT: mean 3.2754 < 3.28 with p = {format_p(p)} (n = 5): meets the record's p < 0.01 bar" in text
    assert "std 0.0011" in text and "min 3.2740, max 3.2770" in text and "95% CI [" in text
    assert sum(line.rstrip().endswith("  complete") for line in text.splitlines()) == 5  # one row per run
    # the same runs against a lower target: mean above it
    text, ok = stats_report([str(five_runs)], target=3.27)
    assert ok and "VERDICT: mean 3.2754 >= 3.27" in text and "does not meet" in text


def test_weak_evidence_does_not_meet(tmp_path):
    for loss in (3.2700, 3.2790):
        hand_log(tmp_path / f"{loss}.txt", loss)
    s = summarize([str(tmp_path)], 3.28)
    assert s.overall.p_value == scipy.stats.ttest_1samp([3.27, 3.279], 3.28, alternative="less").pvalue
    assert s.overall.p_value > 0.01 and not s.overall.meets_bar
    assert "does not meet the record's p < 0.01 bar" in stats_report([str(tmp_path)], 3.28)[0]


def test_one_run_is_not_enough(tmp_path):
    hand_log(tmp_path / "a.txt", 3.20)
    text, ok = stats_report([str(tmp_path / "a.txt")])
    assert ok and "not enough runs (need n >= 2)" in text
    assert summarize([str(tmp_path)]).overall.p_value is None


def test_identical_losses_are_flagged_not_passed(tmp_path):
    for i in range(3):
        hand_log(tmp_path / f"{i}.txt", 3.20)
    s = summarize([str(tmp_path)])
    assert s.overall.p_value < 1e-20 and not s.overall.meets_bar  # scipy: p ~ 0 from rounding noise alone
    assert "t-test is degenerate" in stats_report([str(tmp_path)])[0]
    # no float noise shown as a t of 1e16: zero spread is said as such
    assert s.overall.t == -math.inf and s.overall.std == 0
    assert "t = -inf, p = 0.0000 (degenerate: every loss is the same)" in stats_report([str(tmp_path)])[0]


def test_incomplete_and_failed_are_listed_and_excluded(tmp_path):
    good = [runlog(tmp_path, loss) for loss in (3.20, 3.21)]
    crashed = runlog(tmp_path, 3.00, end=None, stop_at=50)  # would look like a great result if counted
    failed = runlog(tmp_path, 3.00, end="failed: val loss is nan")
    s = summarize([str(tmp_path)])
    status = {r.path: r.status for r in s.runs}
    assert status == {good[0]: "complete", good[1]: "complete", crashed: "incomplete", failed: "failed"}
    assert s.overall.n == 2 and s.overall.mean == pytest.approx(3.205)
    counted = [r.final_val_loss for r in s.counted]
    assert sorted(counted) == [3.20, 3.21]
    assert s.overall.p_value == scipy.stats.ttest_1samp(counted, 3.28, alternative="less").pvalue
    text, _ = stats_report([str(tmp_path)])
    rows = {line.split()[0]: line for line in text.splitlines()[2:6]}
    assert "incomplete (not counted)" in rows[crashed.name] and "50/100" in rows[crashed.name]
    assert "failed: val loss is nan (not counted)" in rows[failed.name]


def test_only_unfinished_logs_is_not_ok(tmp_path):
    runlog(tmp_path, 3.0, end=None, stop_at=25)
    text, ok = stats_report([str(tmp_path)])
    assert not ok and "VERDICT: no complete run" in text and "incomplete" in text


def test_complete_without_final_val_is_not_counted(tmp_path):
    hand_log(tmp_path / "short.txt", 3.0, points=[(0, 10.8, 0), (50, 3.0, 500)])  # says complete, val stops at 50
    hand_log(tmp_path / "ok.txt", 3.1)
    s = summarize([str(tmp_path)])
    assert s.overall.n == 1 and s.overall.mean == 3.1
    assert "no val loss at the last step 100" in stats_report([str(tmp_path)])[0]


def test_old_section_order_is_incomplete_with_reason(tmp_path):
    hand_log(tmp_path / "old.txt", 3.0, plan_after_steps=True)
    (run,) = summarize([str(tmp_path)]).runs
    assert run.status == "incomplete" and not run.counted and "older section order" in run.reason


def test_malformed_files_are_reported(tmp_path):
    hand_log(tmp_path / "good.txt", 3.2)
    hand_log(tmp_path / "good2.txt", 3.25)
    (tmp_path / "notes.txt").write_text("just some notes\n")
    (tmp_path / "badjson.txt").write_text("speedrun-log v1\n=== recipe ===\n{not json\n")
    (tmp_path / "nosteps.txt").write_text('speedrun-log v1\n=== recipe ===\n{"name": "x"}\n')
    (tmp_path / "badsteps.txt").write_text('speedrun-log v1\n=== recipe ===\n{"name": "x", "steps": "x"}\n')
    (tmp_path / "list.txt").write_text('speedrun-log v1\n=== recipe ===\n["steps"]\n')
    text, ok = stats_report([str(tmp_path)])
    assert ok and "n = 2" in text
    assert 'malformed: the recipe section\'s steps ("x") is not a whole number >= 1' in text
    assert "malformed: not a speedrun run log (first line is not 'speedrun-log v1')" in text
    assert "malformed: the recipe section is not valid JSON" in text
    assert "malformed: the recipe section has no 'steps'" in text
    assert str(tmp_path) not in text  # reasons without the path: the file name column says which
    assert text.startswith("2 log(s) (+5 other file(s)), target val loss 3.28\n")


def test_many_files_that_are_not_logs_are_counted_in_one_line(tmp_path):
    """A folder of logs beside console captures and notes: five such files get a row each, the rest one line."""
    hand_log(tmp_path / "run.txt", 3.2)
    for i in range(8):
        (tmp_path / f"console{i}.txt").write_text("compiling...\n")
    text = stats_report([str(tmp_path)])[0]
    assert text.startswith("1 log(s) (+8 other file(s)), target val loss 3.28\n")
    assert text.count("malformed: not a speedrun run log") == 5
    assert ("  ... and 3 more files that are not run logs, left out (such as console5.txt, console6.txt, "
            "console7.txt)") in text


def test_errors_for_bad_inputs(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(LogError, match="notes.txt: not a speedrun run log"):
        stats_report([str(tmp_path / "notes.txt")])
    with pytest.raises(SpeedrunError, match="no such file or folder"):
        stats_report([str(tmp_path / "missing.txt")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpeedrunError, match="folder has no"):
        stats_report([str(tmp_path / "empty")])


def test_folders_recursive_and_each_file_once(tmp_path):
    a = hand_log(tmp_path / "a.txt", 3.2)
    hand_log(tmp_path / "sub" / "b.txt", 3.25)
    s = summarize([str(a), str(tmp_path)])
    assert [r.path.name for r in s.runs] == ["a.txt", "b.txt"] and s.overall.n == 2


def test_xz_compressed_logs_read_as_the_plain_ones(tmp_path):
    """Experiments keep their logs as LOG.txt.xz: stats finds them in folders and reads them unchanged; a damaged
    .xz file is a malformed row, never a crash or a silent skip."""
    import lzma

    plain = runlog(tmp_path / "plain", 3.27)
    packed = tmp_path / "packed" / (plain.name + ".xz")
    packed.parent.mkdir()
    packed.write_bytes(lzma.compress(plain.read_bytes()))
    (tmp_path / "packed" / "broken.txt.xz").write_bytes(lzma.compress(plain.read_bytes())[:-40])
    a, b = summarize([str(tmp_path / "plain")]).runs[0], summarize([str(packed)]).runs[0]
    assert (b.status, b.final_val_loss, b.training_time_s, b.steps_done) == (
        a.status, a.final_val_loss, a.training_time_s, a.steps_done) == ("complete", 3.27, 1.0, 100)
    rows = {r.path.name: r for r in summarize([str(tmp_path / "packed")]).runs}
    assert set(rows) == {packed.name, "broken.txt.xz"}
    assert rows[packed.name].status == "complete"
    assert rows["broken.txt.xz"].status == "malformed" and "cannot read" in rows["broken.txt.xz"].reason


def test_groups_by_recipe_and_commit(tmp_path):
    a, b = "a" * 40, "b" * 40 + " (modified)"
    for i, loss in enumerate((3.20, 3.21, 3.22)):
        hand_log(tmp_path / f"a{i}.txt", loss, commit=a)
    for i, loss in enumerate((3.30, 3.31)):
        hand_log(tmp_path / f"b{i}.txt", loss, commit=b)
    hand_log(tmp_path / "c.txt", 3.1, name="other", commit=a)
    s = summarize([str(tmp_path)])
    by_label = {s.labels[k]: g for k, g in s.groups.items()}
    # hand_log's recipe is {"name": ..., "steps": 100}: steps differs from recipe tiny's 120, "other" is unknown
    assert set(by_label) == {"tiny steps=100 @ aaaaaaaaaa", "tiny steps=100 @ bbbbbbbbbb*", "other @ aaaaaaaaaa"}
    assert by_label["tiny steps=100 @ aaaaaaaaaa"].p_value == scipy.stats.ttest_1samp(
        [3.20, 3.21, 3.22], 3.28, alternative="less").pvalue
    assert by_label["other @ aaaaaaaaaa"].n == 1 and s.overall.n == 6
    text = stats_report([str(tmp_path)])[0]
    assert "by recipe, settings and code:" in text and "tiny steps=100 @ aaaaaaaaaa: n = 3" in text
    assert "tiny steps=100 @ bbbbbbbbbb*: n = 2" in text and "pool 3 groups" in text
    # the last line judges each group, never the pool of all six runs
    assert "VERDICT: mean" not in text
    assert text.splitlines()[-1] == (
        "VERDICT: no pooled verdict: the 6 complete runs are 3 groups (recipe values or code differ); one group "
        f"meets the record's p < 0.01 bar on its own: tiny steps=100 @ aaaaaaaaaa (mean 3.2100, p = "
        f"{format_p(by_label['tiny steps=100 @ aaaaaaaaaa'].p_value)}, n = 3)")
    for i, loss in enumerate((3.0, 3.01)):  # the second group now meets the bar too
        hand_log(tmp_path / f"b{i}.txt", loss, commit=b)
    assert "; 2 groups meet the record's p < 0.01 bar each on its own: " in stats_report([str(tmp_path)])[0]


def test_the_verdict_line_names_at_most_three_groups_lowest_p_first(tmp_path):
    spreads = {100: 0.005, 101: 0.001, 102: 0.003, 103: 0.002}  # a smaller spread: a lower p at the same mean
    for steps, d in spreads.items():
        for i, loss in enumerate((3.0 - d, 3.0 + d)):
            hand_log(tmp_path / f"s{steps}_{i}.txt", loss, steps=steps)
    last = stats_report([str(tmp_path)])[0].splitlines()[-1]
    assert "; 4 groups meet the record's p < 0.01 bar each on its own: " in last
    named = [f"steps={n} @" for n in (101, 103, 102)]
    assert [last.index(n) for n in named] == sorted(last.index(n) for n in named)  # lowest p first
    assert "steps=100 @" not in last and last.endswith("; and 1 more (each group's verdict is listed above)")


def test_a_modified_checkout_is_told_apart_by_the_code_it_logged(tmp_path):
    """Runs from one modified commit (or a copy whose .git is stale) but different code are two groups, labelled
    with the logged code's hash; a clean commit that ran the same code as one of them joins its group (what ran is
    the code, not the commit's name), and the label names both commits."""
    a, b = "a" * 40, "b" * 40 + " (modified)"
    old = {"speedrun/model/gpt.py": "x = 1\ny = 2", "speedrun/train.py": "run()"}
    new = {**old, "speedrun/model/gpt.py": "x = 1\ny = 3"}
    for i, loss in enumerate((3.20, 3.21)):
        hand_log(tmp_path / f"old{i}.txt", loss, commit=b, code=old)
    for i, loss in enumerate((3.25, 3.26)):
        hand_log(tmp_path / f"new{i}.txt", loss, commit=b, code=new)
    hand_log(tmp_path / "clean.txt", 3.3, commit=a, code=old)
    s = summarize([str(tmp_path)])
    old_hash, new_hash = (parse_log(tmp_path / f"{n}0.txt").code_hash for n in ("old", "new"))
    assert old_hash == parse_log(tmp_path / "old1.txt").code_hash == parse_log(tmp_path / "clean.txt").code_hash
    assert len(old_hash) == 12 and old_hash != new_hash
    assert sorted(s.labels.values()) == sorted([f"tiny @ aaaaaaaaaa, bbbbbbbbbb* (same code {old_hash[:8]})",
                                                f"tiny @ bbbbbbbbbb* code {new_hash[:8]}"])
    assert sorted(g.n for g in s.groups.values()) == [2, 3]
    alone = summarize([str(tmp_path / "clean.txt")])
    assert list(alone.labels.values()) == ["tiny steps=100 @ aaaaaaaaaa"]  # a clean commit's label stays the commit alone
    assert parse_log(hand_log(tmp_path / "nocode.txt", 3.3)).code_hash == ""  # an old or hand-made log


def test_the_trainer_logs_the_code_hash_of_its_own_package(tmp_path):
    """What a real run log hashes to is the checkout's package source, as the trainer wrote it."""
    log = parse_log(runlog(tmp_path, 3.2))
    assert log.code_hash == code_hash({f"code: {p.relative_to(PACKAGE_DIR.parent)}": p.read_text().rstrip("\n")
                                       .split("\n") for p in code_files()})  # an empty file: one empty line


def test_runs_with_other_recipe_values_are_not_pooled(tmp_path):
    """Same recipe name and commit, but one set of runs changed `steps` with --set: two groups, never one t-test."""
    for i, loss in enumerate((3.20, 3.21)):
        hand_log(tmp_path / f"short{i}.txt", loss, steps=100)
    for i, loss in enumerate((3.25, 3.26)):
        hand_log(tmp_path / f"long{i}.txt", loss, steps=120)
    s = summarize([str(tmp_path)])
    assert sorted(s.labels.values()) == ["tiny @ unknown", "tiny steps=100 @ unknown"]
    assert sorted(g.n for g in s.groups.values()) == [2, 2]


def test_cli(tmp_path):
    good, bad, junk = tmp_path / "good", tmp_path / "bad", tmp_path / "junk.bin"
    for loss in (3.20, 3.21, 3.22):
        hand_log(good / f"{loss}.txt", loss)
    hand_log(bad / "crash.txt", 3.0, end=None)
    junk.write_bytes(b"\x00\x01binary")
    cmds = [[str(good)], [str(bad)], [str(junk)]]
    # started together: each spends its time importing torch
    procs = [subprocess.Popen([sys.executable, "-m", "speedrun", "stats", *c], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in cmds]
    (out0, err0), (out1, _), (out2, err2) = [p.communicate(timeout=120) for p in procs]
    assert procs[0].returncode == 0 and "VERDICT: mean 3.2100 < 3.28 with p = " in out0 and not err0
    assert procs[1].returncode == 1 and "incomplete" in out1 and "VERDICT: no complete run" in out1
    assert procs[2].returncode == 2 and out2 == ""
    assert err2.count("\n") == 1 and err2.startswith("speedrun: error: ") and "junk.bin" in err2


def test_cli_reads_logs_by_default(tmp_path, monkeypatch, capsys):
    from speedrun.cli import main
    for loss in (3.20, 3.21):
        hand_log(tmp_path / "logs" / f"{loss}.txt", loss)
    monkeypatch.chdir(tmp_path)
    assert main(["stats"]) == 0 and "2 log(s)" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path / "logs")
    assert main(["stats"]) == 2 and capsys.readouterr().err.strip() == "speedrun: error: logs: no such file or folder"


def test_time_to_target_is_the_first_validation_at_or_below_it(tmp_path):
    """curve(3.0, 100 steps, val every 25, 10 ms a step): 10.8 @0, 6.29 @25, 3.975 @50, 3.122 @75, 3.0 @100."""
    from speedrun.runlog import parse_log
    from speedrun.stats import time_to_target

    path = runlog(tmp_path, 3.0)
    log = parse_log(path)
    assert time_to_target(log, 4.0) == (50, 0.5)
    assert time_to_target(log, 3.122) == (75, 0.75)  # "at or below"
    assert time_to_target(log, 3.0) == (100, 1.0)
    assert time_to_target(log, 2.9) is None
    text, _ = stats_report([str(tmp_path)], target=3.5)
    assert "to 3.5 (s @ step)" in text and "0.8 @ 75" in text
    assert "not reached" in stats_report([str(tmp_path)], target=2.9)[0]


def test_labels_show_the_data_files_when_they_differ(tmp_path):
    """tiny trains on the bundled demo corpus: a run on data/mine must not look like one on demo, in the group labels
    or in the table of groups; fields that only tell runs apart when compared (val_tokens, or any field of a recipe
    this checkout does not define) are added where two groups would otherwise share a label."""
    for i, loss in enumerate((3.20, 3.21)):
        hand_log(tmp_path / f"demo{i}.txt", loss, steps=120, recipe=dict(train_files="demo", val_tokens=8192))
        hand_log(tmp_path / f"mine{i}.txt", loss + 0.05, steps=120,
                 recipe=dict(train_files="data/mine/*train*.bin", val_files="data/mine/*val*.bin", val_tokens=8192))
        hand_log(tmp_path / f"small{i}.txt", loss, steps=120, recipe=dict(train_files="demo", val_tokens=4096))
        hand_log(tmp_path / f"x{i}.txt", loss, name="gone", recipe={"train_files": "a/*.bin"})
        hand_log(tmp_path / f"y{i}.txt", loss, name="gone", recipe={"train_files": "b/*.bin"})
    s = summarize([str(tmp_path)])
    assert sorted(s.labels.values()) == [
        "gone train_files=a/*.bin @ unknown", "gone train_files=b/*.bin @ unknown",
        "tiny train_files=data/mine/*train*.bin val_files=data/mine/*val*.bin @ unknown",
        "tiny val_tokens=4096 @ unknown", "tiny val_tokens=8192 @ unknown"]
    assert all(g.n == 2 for g in s.groups.values())
    text = stats_report([str(tmp_path)])[0]
    assert "tiny train_files=data/mine/*train*.bin val_files=data/mine/*val*.bin @ unknown: n = 2" in text


def test_settings_every_group_shares_are_said_once(tmp_path):
    """A comparison on one track: the data files every group shares leave the labels and head the groups' table once;
    a removed idea (retired field) that a run had on stays in its label."""
    track = dict(train_files="track/train_*.bin", val_files="track/val.bin", val_tokens=4096)
    for i, loss in enumerate((3.20, 3.21)):
        hand_log(tmp_path / f"base{i}.txt", loss, steps=120, recipe=track)
        hand_log(tmp_path / f"long{i}.txt", loss - 0.01, steps=150, recipe=track)
        hand_log(tmp_path / f"old{i}.txt", loss, steps=120, recipe=dict(track, bigram_buckets=1024))
    s = summarize([str(tmp_path)])
    assert sorted(s.labels.values()) == ["tiny @ unknown", "tiny bigram_buckets=1024 @ unknown",
                                         "tiny steps=150 @ unknown"]
    assert s.shared == "train_files=track/train_*.bin val_files=track/val.bin"  # val_tokens: only to tell apart
    text = stats_report([str(tmp_path)])[0]
    assert f"by recipe, settings and code (every run: {s.shared}):" in text
    one = tmp_path / "one"
    one.mkdir()
    hand_log(one / "a.txt", 3.2, steps=120, recipe=track)
    hand_log(one / "b.txt", 3.21, steps=120, recipe=track)
    alone = summarize([str(one)])  # a single group: its label says everything, nothing is shared out
    assert alone.shared == "" and list(alone.labels.values()) == [
        "tiny train_files=track/train_*.bin val_files=track/val.bin @ unknown"]


def test_time_interval_never_goes_below_zero(tmp_path):
    """Three runs of 1.0, 1.1 and 9.0 s: the 95% t interval of the mean is 3.7 +- 11.3 s; a time bound is never
    negative, so its lower end is 0 and the report says it was clipped."""
    for i, ms in enumerate((10.0, 11.0, 90.0)):
        hand_log(tmp_path / f"{i}.txt", 3.2 + i / 100, ms_per_step=ms)
    s = summarize([str(tmp_path)]).overall
    times = np.array([1.0, 1.1, 9.0])
    half = scipy.stats.t.ppf(0.975, 2) * times.std(ddof=1) / np.sqrt(3)
    assert times.mean() - half < 0
    assert s.time_ci_s == pytest.approx((0.0, times.mean() + half)) and s.time_ci_clipped
    text = stats_report([str(tmp_path)])[0]
    assert f"95% CI [0.0, {times.mean() + half:.1f}] s (lower end clipped at 0" in text and "[-" not in text
    # a tight set is left as it is
    tight = [str(tmp_path / "0.txt"), str(tmp_path / "1.txt")]  # 1.0 and 1.1 s
    s = summarize(tight).overall
    assert not s.time_ci_clipped and s.time_ci_s[0] > 0 and "clipped" not in stats_report(tight)[0]


def test_unfinished_runs_show_their_last_real_val_loss(tmp_path):
    """A crashed run's 'final' column is its last val loss after step 0, with the step; none when only step 0 was
    validated (its ~10.8 is the untrained model's, never a result)."""
    runlog(tmp_path, 3.2)
    runlog(tmp_path, 3.21)
    crashed = runlog(tmp_path, 3.0, end=None, stop_at=60)  # validated at 0, 25, 50
    failed = runlog(tmp_path, 3.0, end="failed: val loss is nan", stop_at=10)  # validated at 0 only
    hand_log(tmp_path / "short.txt", 3.0, points=[(0, 10.8, 0), (50, 3.9, 500)])  # says complete, val stops at 50
    runs = {r.path.name: r for r in summarize([str(tmp_path)]).runs}
    assert runs[crashed.name].final_val_loss is None and runs[crashed.name].last_val == (50, 3.975)
    assert runs[failed.name].final_val_loss is None and runs[failed.name].last_val is None
    assert runs["short.txt"].final_val_loss is None and runs["short.txt"].last_val == (50, 3.9)
    text = stats_report([str(tmp_path)])[0]
    rows = {line.split()[0]: line for line in text.splitlines()[2:7]}
    assert "last val 3.9750 @ step 50" in rows[crashed.name]
    assert "last val 3.9000 @ step 50" in rows["short.txt"]
    assert " — " in rows[failed.name] and "10.8" not in text


def test_runs_of_other_seeds_pool_and_one_seed_is_said(tmp_path):
    """Seeds are repeats of one recipe, not settings that split the runs into groups; when every run shares one
    seed the report says what its t-test measures."""
    for seed, loss in ((0, 3.270), (1, 3.272), (2, 3.271)):
        hand_log(tmp_path / "seeds" / f"{seed}.txt", loss, recipe={"seed": seed})
        hand_log(tmp_path / "one" / f"{seed}.txt", loss, recipe={"seed": 0})
    s = summarize([str(tmp_path / "seeds")], 3.28)
    assert len(s.groups) == 1 and s.overall.n == 3
    text = stats_report([str(tmp_path / "seeds")], 3.28)[0]
    assert "by recipe, settings and code" not in text and "note: every run used seed" not in text
    assert "seed=" not in "".join(s.labels.values())
    text = stats_report([str(tmp_path / "one")], 3.28)[0]
    assert "note: every run used seed 0, so they differ only by the device's nondeterminism" in text
    assert "meets the record's p < 0.01 bar" in text


def test_a_field_a_log_predates_reads_as_its_default(tmp_path):
    """Logs written before a field existed pool labels with logs that hold it at its default (or a removed idea
    at its off value): the labels name the commits, not `field=(not logged)` against `field=False`."""
    hand_log(tmp_path / "old.txt", 3.27, commit="a" * 40)
    hand_log(tmp_path / "new.txt", 3.27, commit="b" * 40, recipe={"key_offset": False, "fp8_attn": False})
    hand_log(tmp_path / "on.txt", 3.27, commit="c" * 40, recipe={"key_offset": True})
    labels = sorted(summarize([str(tmp_path)]).labels.values())
    assert labels == ["tiny @ aaaaaaaaaa", "tiny @ bbbbbbbbbb", "tiny key_offset=True @ cccccccccc"]


def test_runs_on_other_data_files_are_flagged(tmp_path):
    """Same recipe values and code, but the logs' data sections differ (a re-tokenized val split): said, not hidden.
    Logs from before the section (no data) flag nothing."""
    for i, loss in enumerate((3.20, 3.21)):
        hand_log(tmp_path / f"a{i}.txt", loss, data=["train: d_train_000000.bin 1000 tokens aaaa", "val: v 10 tokens b"])
    hand_log(tmp_path / "b.txt", 3.22, data=["train: d_train_000000.bin 1000 tokens aaaa", "val: v 10 tokens c"])
    hand_log(tmp_path / "old.txt", 3.23)
    text = stats_report([str(tmp_path)])[0]
    assert ("note: the 4 runs of tiny steps=100 @ unknown used 2 different sets of data files (the logs' data "
            "sections differ); their val losses may not be comparable") in text
    assert "different sets of data" not in stats_report([str(tmp_path / "a0.txt"), str(tmp_path / "a1.txt"),
                                                         str(tmp_path / "old.txt")])[0]


def test_a_reader_that_goes_away_ends_stats_quietly(tmp_path):
    # `speedrun stats | head -1`: the pipe's reader closed before the table is written
    for loss in (3.20, 3.21):
        hand_log(tmp_path / f"{loss}.txt", loss)
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "speedrun", "stats", str(tmp_path)], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""


@pytest.mark.parametrize("target", ["inf", "nan", "0", "-1", "x"])
def test_a_target_must_be_a_val_loss(target, capsys):
    from speedrun.cli import main
    for command in (["stats"], ["plot"], ["records", "--new", "r"]):
        with pytest.raises(SystemExit) as e:
            main([*command, "--target", target])
        assert e.value.code == 2
        assert f"argument --target: {target!r} must be a val loss: a finite number above 0" in capsys.readouterr().err


def test_a_recipe_files_runs_are_labelled_with_the_fields_their_command_set(tmp_path):
    """A recipe file (lowlr.toml: base tiny, muon_lr 0.03) is no recipe this checkout defines: its label names what
    the command's --set changed, as tiny's label names what differs from tiny, not the file's own values."""
    for seed in (0, 1):
        hand_log(tmp_path / f"tiny{seed}.txt", 7.3 + seed / 100, steps=20, recipe={"val_every": 10, "seed": seed})
        idea = hand_log(tmp_path / "idea" / f"lowlr{seed}.txt", 7.28 + seed / 100, steps=20, name="lowlr",
                        recipe={"val_every": 10, "muon_lr": 0.03, "seed": seed})
        idea.write_text(idea.read_text().replace("git_commit:", "command: speedrun train --recipe recipes/lowlr.toml "
                                                 f"--set steps=20 --set val_every=10 --set seed={seed}\ngit_commit:"))
    assert list(summarize([str(tmp_path / "idea")]).labels.values()) == ["lowlr steps=20 val_every=10 @ unknown"]
    s = summarize([str(tmp_path)])
    assert sorted(s.labels.values()) == ["lowlr @ unknown", "tiny @ unknown"]
    assert s.shared == "steps=20 val_every=10"  # said once, for both alike
