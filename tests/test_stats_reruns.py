"""`speedrun stats` counts each run once: a copy of a log (renamed or compressed), a deterministic rerun of a seed,
and a resume that replays a finished run's last steps are listed, never counted again (they would lower p); an
interrupted run's first part is one run with its resume."""

from __future__ import annotations

import pytest
import scipy.stats
from logfactory import curve, hand_log, interrupted_and_resumed, resumed_log, runlog

from speedrun.stats import stats_report, summarize


def test_a_copied_log_counts_once(tmp_path):
    """A copy of a log (renamed, or compressed: .txt.xz logs are read too) is the same run: listed, not counted again,
    so it cannot lower the p-value. Two runs of equal losses but their own texts stay two runs."""
    import lzma

    folder = tmp_path / "logs"
    runs = [hand_log(folder / f"run{i}.txt", loss) for i, loss in enumerate((3.20, 3.22, 3.21))]
    (folder / "run0_copy.txt").write_text(runs[0].read_text())
    with lzma.open(folder / "run1.txt.xz", "wt") as f:
        f.write(runs[1].read_text())
    s = summarize([str(folder)])
    assert s.overall.n == 3 and len(s.runs) == 5
    assert s.overall.p_value == pytest.approx(scipy.stats.ttest_1samp([3.20, 3.22, 3.21], 3.28,
                                                                      alternative="less").pvalue)
    copies = {r.path.name: r.copy_of.name for r in s.runs if r.copy_of}
    assert copies == {"run0_copy.txt": "run0.txt", "run1.txt.xz": "run1.txt"}
    report = stats_report([str(folder)])[0]
    assert f"a copy of {runs[0]}; not counted again" in report and "n = 3" in report


def test_a_deterministic_rerun_of_a_seed_counts_once(tmp_path):
    """A CPU rerun of a seed repeats every loss: it adds n, not information, and would lower p (three runs at
    p = 0.05 read as five at p < 0.01). It counts once, named; a rerun with losses of its own (a GPU's) counts."""
    folder = tmp_path / "logs"
    for loss in (3.20, 3.26, 3.23):
        runlog(folder, loss)
    rerun = runlog(tmp_path / "more", 3.20, rerun=True)
    first = runlog(tmp_path / "again", 3.20, rerun=True)  # the reruns' own trajectory: one of them counts
    s = summarize([str(folder), str(tmp_path / "more"), str(tmp_path / "again")])
    assert s.overall.n == 4 and len(s.runs) == 5
    (left,) = [r for r in s.runs if r.copy_of]
    assert left.path == first and left.copy_of == rerun
    assert left.reason == f"repeats {rerun} loss for loss (same seed, deterministic); not counted again"
    assert summarize([str(folder), str(tmp_path / "more")]).overall.n == 4  # its own train losses: not a rerun
    assert "not counted again" in stats_report([str(tmp_path)])[0]


def test_a_resume_that_replays_a_finished_runs_last_steps_counts_once(tmp_path):
    """`--resume` from step 50 of a run that went on to 100: on a CPU the branch replays steps 51-100 loss for loss,
    one run logged twice, not a second sample."""
    import re

    folder = tmp_path / "logs"
    whole = hand_log(folder / "a_whole.txt", 3.20, recipe={"seed": 1})
    hand_log(folder / "c_other_seed.txt", 3.22, recipe={"seed": 2})
    lines = [line for line in whole.read_text().splitlines()
             if not ((m := re.match(r"step:(\d+)/", line)) and int(m[1]) <= 50)]
    branch = folder / "b_branch.txt"
    branch.write_text("\n".join(lines).replace(f"host: {whole}", "host: elsewhere") + "\n")
    s = summarize([str(folder)])
    assert s.overall.n == 2
    (left,) = [r for r in s.runs if r.copy_of]
    assert (left.path, left.copy_of) == (branch, whole)
    # a branch that went its own way (another loss at a step both logged) is a run of its own
    branch.write_text(branch.read_text().replace("val_loss:", "val_loss:9", 1))
    assert summarize([str(folder)]).overall.n == 3


def _resumed(folder, first_part: str | None, at: int = 50, name: str = "a_resumed.txt"):
    """A resumed run's log as `speedrun train --resume` writes it: only the steps after `at`, its note naming the
    checkpoint and, where known, the first part's log (relative to where the run ran)."""
    import re

    whole = hand_log(folder / "whole.tmp", 3.20, recipe={"seed": 1})
    lines = [line for line in whole.read_text().splitlines()
             if not ((m := re.match(r"step:(\d+)/", line)) and int(m[1]) <= at)]
    where = f" (earlier steps: log {first_part})" if first_part else ""
    lines.insert(lines.index("=== steps ===") + 1, f"note: resumed from ckpt/c_step{at:06d}.pt at step {at}{where}")
    whole.unlink()
    (folder / name).write_text("\n".join(lines).replace(f"host: {whole}", "host: resumed") + "\n")
    return folder / name


def test_of_a_resume_and_the_straight_run_it_repeats_the_straight_one_counts(tmp_path):
    """A resume holds the run's last steps only; the straight run it repeats holds them all: the straight run counts
    and the resume is named as left out, whichever comes first."""
    folder = tmp_path / "logs"
    resumed = _resumed(folder, "logs/x_first.txt")
    # the same train losses: hand_log's come from its path
    straight = hand_log(folder / "whole.tmp", 3.20, recipe={"seed": 1}).rename(folder / "b_straight.txt")
    s = summarize([str(folder)])
    (left,) = [r for r in s.runs if r.copy_of]
    assert (left.path, left.copy_of) == (resumed, straight) and [r.path for r in s.counted] == [straight]
    assert left.reason == (f"repeats {straight} loss for loss (same seed, deterministic; that one logged more "
                           "steps); not counted again")


def test_a_resumed_runs_time_to_target_comes_from_its_first_part_or_is_a_bound(tmp_path):
    """A resumed log starts after its checkpoint's step: the target met before it (here at step 50, in the first
    part) is read from the first part's log when given; without it the time is shown as a bound, not as a fact."""
    folder = tmp_path / "logs"
    resumed = _resumed(folder, "elsewhere/x_first.txt")  # the note's path: from where the run ran
    text, _ = stats_report([str(resumed)], target=4.2)
    assert "≤0.8 @ ≤75" in text and "1 resumed run(s) without their first part's log" in text
    hand_log(folder / "x_first.txt", 3.20, end="failed: interrupted at step 50",
             points=[p for p in curve(3.20) if p[0] <= 50])
    text, _ = stats_report([str(folder)], target=4.2)
    row = next(line for line in text.splitlines() if resumed.name in line)
    assert "0.5 @ 50" in row and "≤" not in text
    assert "not after step 50" in stats_report([str(resumed)], target=3.0)[0]  # not met after the resume


def test_an_interrupted_runs_first_part_is_one_run_with_its_resume(tmp_path):
    """Ctrl-C, then `--resume`: two logs of one run. Given together, the first part is said to be joined, not
    listed as a failed run of its own (nor counted in n); given alone, it is the failed run it was."""
    folder = tmp_path / "logs"
    first, resumed = interrupted_and_resumed(folder, 3.20, recipe={"seed": 1})
    hand_log(folder / "other.txt", 3.22, recipe={"seed": 2})
    s = summarize([str(folder)])
    assert s.overall.n == 2 and [r.path for r in s.runs if r.continued_in is not None] == [first]
    text = stats_report([str(folder)])[0]
    assert first.name not in [line.split()[0] for line in text.splitlines() if line.startswith("  ")]  # no row
    assert "failed" not in text.replace(f"{first.name} (failed:", "")
    assert (f"  note: {first.name} (failed: interrupted at step 50) is the first part of {resumed.name}, which "
            "resumed it at step 50: joined, one run") in text.splitlines()
    alone = stats_report([str(first), str(folder / "other.txt")])[0]
    assert "failed: interrupted at step 50" in alone and "joined" not in alone


def test_the_parts_of_a_run_resumed_twice_are_one_run_and_a_finished_run_branched_off_is_its_own(tmp_path):
    """A resume interrupted in turn and resumed again: three logs, one run, listed as the last. A resume from a
    periodic checkpoint of a run that went on to finish branches off it: the finished run stays a run."""
    folder = tmp_path / "logs"
    first, middle = interrupted_and_resumed(folder, 3.20, at=25, recipe={"seed": 1})
    middle.unlink()
    resumed_log(middle, 3.20, 25, first, stop_at=50, recipe={"seed": 1})
    last = resumed_log(folder / "run_c.txt", 3.20, 50, middle, recipe={"seed": 1})
    text = stats_report([str(folder)])[0]
    assert "complete runs: n = 1" in text and "failed" not in text.replace("(failed:", "")
    assert f"{middle.name} (failed: interrupted at step 50) is the first part of {last.name}" in text
    assert f"resumed it at step 25: joined, one run, listed as {last.name}" in text
    branched = hand_log(tmp_path / "branch" / "finished.txt", 3.20, recipe={"seed": 3})
    resumed_log(tmp_path / "branch" / "branch.txt", 3.21, 50, branched, recipe={"seed": 3})
    s = summarize([str(tmp_path / "branch")])
    assert s.overall.n == 2 and not any(r.continued_in for r in s.runs)


def test_one_seed_is_said_only_of_runs_of_one_group(tmp_path):
    """A steps=20 and a steps=60 run, both seed 0, are two groups of one run each: not repeats of a seed, so not
    'they differ only by the device's nondeterminism'; a group whose runs all used one seed is named when it is said."""
    hand_log(tmp_path / "short.txt", 3.30, steps=20, recipe={"seed": 0})
    hand_log(tmp_path / "long.txt", 3.27, steps=60, recipe={"seed": 0})
    assert len(summarize([str(tmp_path)], 3.28).groups) == 2
    assert "used seed" not in stats_report([str(tmp_path)], 3.28)[0]
    hand_log(tmp_path / "long2.txt", 3.26, steps=60, recipe={"seed": 0})
    s = summarize([str(tmp_path)], 3.28)
    label = next(s.labels[k] for k, g in s.groups.items() if g.n == 2)
    text = stats_report([str(tmp_path)], 3.28)[0]
    assert f"note: every run of {label} used seed 0, so they differ only by the device's nondeterminism" in text
    assert text.count("used seed") == 1


def test_a_symlinked_folder_of_logs_is_read_once_and_a_loop_ends(tmp_path):
    """Logs kept elsewhere and linked into the folder `stats` is given are read (as `data tokenize` reads a linked
    folder), each file once however many links reach it; a link back to a folder above does not loop."""
    elsewhere = tmp_path / "elsewhere"
    for seed, loss in ((1, 3.20), (2, 3.21)):
        hand_log(elsewhere / f"run{seed}.txt", loss, recipe={"seed": seed})
    runs = tmp_path / "runs"
    hand_log(runs / "run0.txt", 3.19, recipe={"seed": 0})
    (runs / "linked").symlink_to(elsewhere)
    (runs / "again").symlink_to(elsewhere)
    (elsewhere / "up").symlink_to(runs)  # a loop: runs/linked/up is runs
    text, ok = stats_report([str(runs)])
    assert ok and text.splitlines()[0].startswith("3 log(s), ") and "n = 3" in text


def test_a_run_whose_parts_ran_different_code_says_so(tmp_path):
    """Code edited between Ctrl-C and `--resume`: the joined run is a hybrid, not a run of the resume's code alone
    (user test: stats and compare labelled it with the resume's code and said nothing)."""
    folder = tmp_path / "logs"
    first = hand_log(folder / "run_a.txt", 3.20, end="failed: interrupted at step 50; checkpoint c.pt",
                     points=[p for p in curve(3.20) if p[0] <= 50], code={"speedrun/x.py": "old = 1"})
    resumed_log(folder / "run_b.txt", 3.20, 50, first, code={"speedrun/x.py": "new = 2"})
    text = stats_report([str(folder)])[0]
    note = next(line for line in text.splitlines() if "is the first part of run_b.txt" in line)
    assert "its parts ran different code" in note and "to step 50" in note, note
    same = tmp_path / "same"
    interrupted_and_resumed(same, 3.20, code={"speedrun/x.py": "old = 1"})
    assert "different code" not in stats_report([str(same)])[0]
