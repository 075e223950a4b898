"""`speedrun compare`: pairs by seed, numbers equal scipy's, and only complete runs count on either side."""

from __future__ import annotations

from pathlib import Path

import pytest
import scipy.stats
from logfactory import hand_log, interrupted_and_resumed

from speedrun.cli import main
from speedrun.compare import MAX_SEEDS, compare, compare_report, seeds_for_power
from speedrun.errors import SpeedrunError

BASE = {7: 3.3852, 8: 3.3748, 11: 3.3879, 12: 3.3722}
CHANGE = {7: 3.3798, 8: 3.3923, 11: 3.3889, 13: 3.3730}  # seeds 7, 8, 11 pair; 12 and 13 do not


def logs(folder, losses: dict[int, float], ms_per_step: float = 10.0):
    for seed, loss in losses.items():
        hand_log(folder / f"s{seed}.txt", loss, recipe={"seed": seed}, ms_per_step=ms_per_step)
    return str(folder)


def test_paired_by_seed_and_welch_equal_scipy(tmp_path):
    cmp = compare([logs(tmp_path / "base", BASE)], [logs(tmp_path / "change", CHANGE, ms_per_step=12.0)])
    assert cmp.pairs == {s: (BASE[s], CHANGE[s]) for s in (7, 8, 11)}
    ref = scipy.stats.ttest_rel([CHANGE[s] for s in (7, 8, 11)], [BASE[s] for s in (7, 8, 11)])
    assert cmp.paired == pytest.approx((ref.statistic, ref.pvalue))
    ref = scipy.stats.ttest_ind(list(CHANGE.values()), list(BASE.values()), equal_var=False)
    assert cmp.welch == pytest.approx((ref.statistic, ref.pvalue))
    assert cmp.difference == pytest.approx((-0.0054 + 0.0175 + 0.0010) / 3)
    assert cmp.time_ratio == pytest.approx(1.2)
    text = compare_report([str(tmp_path / "base")], [str(tmp_path / "change")])
    assert "7: -0.0054, 8: +0.0175, 11: +0.0010" in text and "1.200x" in text
    assert "VERDICT: no significant difference: change - base = +0.0044" in text and "paired over 3 seeds" in text
    need = seeds_for_power([CHANGE[s] - BASE[s] for s in (7, 8, 11)])
    assert f"seeds to tell this difference at this spread: about {need} (p < 0.05 with probability 80%" in text


@pytest.mark.parametrize("effect, seeds", [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_for_power_match_the_paired_t_test_tables(effect, seeds):
    """G*Power's sample sizes for a two-sided paired t-test at 0.05 and power 0.8, by effect size dz = mean / sd."""
    diffs = [effect * 0.01 + 0.01 * k for k in (-1, 0, 1)]  # mean effect * 0.01, sd 0.01 (ddof 1)
    assert seeds_for_power(diffs) == seeds
    assert seeds_for_power([-d for d in diffs]) == seeds  # the direction does not matter


def test_seeds_for_power_says_when_it_cannot_say():
    assert seeds_for_power([0.01]) is None  # one difference: no spread
    assert seeds_for_power([0.01, 0.01]) is None  # no spread
    assert seeds_for_power([-0.01, 0.01]) is None  # a mean of 0
    assert seeds_for_power([0.0001, -0.01, 0.0102]) == MAX_SEEDS + 1  # a tiny effect in a large spread


def test_repeats_of_a_seed_are_averaged_and_a_clear_gain_is_called(tmp_path):
    base = logs(tmp_path / "base", {1: 3.40, 2: 3.41, 3: 3.39})
    hand_log(tmp_path / "base" / "s1b.txt", 3.42, recipe={"seed": 1})  # seed 1 again: its mean is 3.41
    change = logs(tmp_path / "change", {1: 3.38, 2: 3.389, 3: 3.371})
    cmp = compare([base], [change])
    assert cmp.pairs[1] == pytest.approx((3.41, 3.38))
    assert cmp.paired[1] < 0.05
    text = compare_report([base], [change])
    assert "VERDICT: the change ends lower by 0.0233" in text and "significant at 0.05" in text
    assert "seeds to tell" not in text  # told already: no planning line


def test_without_shared_seeds_it_falls_back_to_welch(tmp_path):
    cmp = compare([logs(tmp_path / "a", {1: 3.40, 2: 3.41})], [logs(tmp_path / "b", {3: 3.30, 4: 3.31})])
    assert cmp.pairs == {} and cmp.paired is None and cmp.welch[1] < 0.05
    text = compare_report([str(tmp_path / "a")], [str(tmp_path / "b")])
    assert "no seed ran on both sides" in text and "(p = " in text and "Welch, unpaired" in text


def test_a_side_of_two_settings_is_refused_and_of_two_codes_pooled_with_a_note(tmp_path):
    """A 120-step run averaged with 100-step ones as one seed would judge neither; the same values run by two
    versions of the code pool, said."""
    base, change = logs(tmp_path / "base", BASE), logs(tmp_path / "change", CHANGE)
    assert "versions of the code" not in compare_report([base], [change])
    hand_log(tmp_path / "change" / "new.txt", 3.37, recipe={"seed": 14}, code={"speedrun/x.py": "other code"})
    text = compare_report([base], [change])
    assert ("note: the change's runs ran 2 versions of the code (the same recipe values), pooled here; `speedrun "
            "stats` on them shows each group") in text and "the base's runs ran" not in text
    long = hand_log(tmp_path / "long" / "long.txt", 3.37, steps=120, recipe={"seed": 14})  # another `steps`
    with pytest.raises(SpeedrunError, match=r"^change: its runs have 2 settings \(recipe or values differ: .* and "
                                            rf"{long}\); give each side runs of one recipe and values"):
        compare_report([base], [change, str(long)])


def test_too_few_runs_for_a_test(tmp_path):
    text = compare_report([logs(tmp_path / "a", {1: 3.40})], [logs(tmp_path / "b", {1: 3.39, 2: 3.38})])
    assert "(one seed: no test)" in text and "a side has one run: no test" in text
    assert "VERDICT: too few runs for a test" in text


def test_a_zero_base_time_gives_no_ratio(tmp_path):
    text = compare_report([logs(tmp_path / "a", {1: 3.40}, ms_per_step=0.0)], [logs(tmp_path / "b", {1: 3.39})])
    assert "change / base: — (the base's logged training time is 0)" in text


def test_only_complete_runs_count(tmp_path):
    base = logs(tmp_path / "base", {1: 3.40, 2: 3.41})
    hand_log(tmp_path / "base" / "crash.txt", 3.0, recipe={"seed": 3}, end=None)
    (tmp_path / "base" / "notes.txt").write_text("not a log\n")
    cmp = compare([base], [logs(tmp_path / "change", {1: 3.39, 2: 3.40, 3: 3.10})])
    assert len(cmp.base.runs) == 2 and set(cmp.pairs) == {1, 2}  # the crashed seed-3 run pairs with nothing
    assert "left out: 1 incomplete, 1 not a run log" in compare_report([base], [str(tmp_path / "change")])


def test_errors(tmp_path):
    a = logs(tmp_path / "a", {1: 3.40})
    hand_log(tmp_path / "crashed" / "c.txt", 3.0, end=None)
    with pytest.raises(SpeedrunError, match="change: no complete run among 1 log"):
        compare([a], [str(tmp_path / "crashed")])
    with pytest.raises(SpeedrunError, match="given as both base and change"):
        compare([a], [str(tmp_path / "a" / "s1.txt")])
    with pytest.raises(SpeedrunError, match="no such file or folder"):
        compare([a], [str(tmp_path / "missing")])
    for name in ("notes.txt", "console.txt"):  # not run logs at all: said so, not 'no complete run'
        (tmp_path / "junk" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "junk" / name).write_text("not a log\n")
    with pytest.raises(SpeedrunError, match=r"^change: none of the 2 files is a run log \(.*console.txt: not a speedrun"):
        compare([a], [str(tmp_path / "junk")])
    # a copy of a base log among the change's: its name ends in the same run id
    run_a = tmp_path / "runs_a" / "20261205-012928_tiny_3f9c2a1e.txt"
    hand_log(run_a, 3.40, recipe={"seed": 1})
    hand_log(tmp_path / "runs_b" / "20261205-013000_tiny_0badc0de.txt", 3.39, recipe={"seed": 1})
    (tmp_path / "runs_b" / run_a.name).write_text(run_a.read_text())
    with pytest.raises(SpeedrunError, match=r"one run \(id 3f9c2a1e\) on both sides, a copy"):
        compare([str(run_a.parent)], [str(tmp_path / "runs_b")])
    # ... or renamed: its text is the same
    (tmp_path / "runs_c").mkdir()
    (tmp_path / "runs_c" / "renamed.txt").write_text(run_a.read_text())
    with pytest.raises(SpeedrunError, match=r"renamed.txt and .*3f9c2a1e.txt: one log's text on both sides, a copy"):
        compare([str(run_a.parent)], [str(tmp_path / "runs_c")])


def test_a_copy_within_a_side_is_one_run(tmp_path):
    a = logs(tmp_path / "a", {1: 3.40, 2: 3.42})
    b = logs(tmp_path / "b", {1: 3.39, 2: 3.41})
    (tmp_path / "b" / "s1_copy.txt").write_text((tmp_path / "b" / "s1.txt").read_text())
    result = compare([a], [b])
    assert [r.path.name for r in result.change.runs] == ["s1.txt", "s2.txt"]
    assert [r.path.name for r in result.change.left_out] == ["s1_copy.txt"]
    assert "left out: s1_copy.txt (a copy of s1.txt)" in compare_report([a], [b])  # not 'without a final val'
    # a deterministic repeat (a CPU rerun of seed 2: every loss the same, its own text) is named as one
    (tmp_path / "b" / "s2_rerun.txt").write_text((tmp_path / "b" / "s2.txt").read_text().replace("host: ", "host: re"))
    assert "left out: s1_copy.txt (a copy of s1.txt), s2_rerun.txt (repeats s2.txt)" in compare_report([a], [b])
    # both seeds moved by -0.0100: the paired t is a division by zero, so no paired test (Welch still has spread)
    assert result.paired is None and "(equal differences, no spread: no test)" in compare_report([a], [b])


def test_sides_without_spread_get_no_test(tmp_path):
    """Equal losses on both sides (one seed rerun on a GPU, rounded alike) would give t = -inf and 'significant'."""
    a = [hand_log(tmp_path / "a" / f"r{i}.txt", 3.40, recipe={"seed": 0}) for i in range(2)]
    b = [hand_log(tmp_path / "b" / f"r{i}.txt", 3.30, recipe={"seed": 0}) for i in range(2)]
    result = compare([str(p) for p in a], [str(p) for p in b])
    assert result.paired is None and result.welch is None
    assert "VERDICT: no test: each side's final val losses are all the same (no spread)" in compare_report(
        [str(tmp_path / "a")], [str(tmp_path / "b")])


def test_cli(tmp_path, capsys):
    a, b = logs(tmp_path / "a", {1: 3.40, 2: 3.41}), logs(tmp_path / "b", {1: 3.39, 2: 3.41})
    assert main(["compare", "--base", a, "--change", b]) == 0
    assert "paired by seed (1: -0.0100, 2: +0.0000)" in capsys.readouterr().out
    assert main(["compare", "--base", a, "--change", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err
    assert main(["compare", a, b]) == 0  # BASE CHANGE: short for --base / --change
    assert "paired by seed (1: -0.0100, 2: +0.0000)" in capsys.readouterr().out
    for wrong in ([a], [a, b, a], [a, b, "--base", a], ["--base", a]):
        with pytest.raises(SystemExit) as e:
            main(["compare", *wrong])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("speedrun: error: give BASE CHANGE") and err.count("\n") == 1


def test_sides_on_other_data_files_are_flagged(tmp_path):
    for side, val in (("base", "v1"), ("change", "v2"), ("again", "v1")):
        for seed, loss in ((7, 3.38), (8, 3.39)):
            hand_log(tmp_path / side / f"s{seed}.txt", loss, recipe={"seed": seed}, data=[f"val: {val} 10 tokens x"])
    report = compare_report([str(tmp_path / "base")], [str(tmp_path / "change")])
    assert ("  note: the base and change runs used 2 different sets of data files (the logs' data sections differ); "
            "their val losses may not be comparable") in report.splitlines()
    assert "data files" not in compare_report([str(tmp_path / "base")], [str(tmp_path / "again")])


def test_the_report_names_what_the_change_changed(tmp_path):
    for seed in (1, 2):
        hand_log(tmp_path / "base" / f"s{seed}.txt", 3.40 + seed / 1000, recipe={"seed": seed, "muon_lr": 0.05, "steps": 100})
        hand_log(tmp_path / "change" / f"s{seed}.txt", 3.39 - seed / 700, recipe={"seed": seed, "muon_lr": 0.03, "tied_head": True})
        hand_log(tmp_path / "same" / f"s{seed}.txt", 3.39 - seed / 700, recipe={"seed": seed + 10, "muon_lr": 0.05})
        hand_log(tmp_path / "mixed" / f"s{seed}.txt", 3.39 - seed / 700, recipe={"seed": seed, "muon_lr": 0.01 * seed})
    report = lambda side: compare_report([str(tmp_path / "base")], [str(tmp_path / side)]).splitlines()[2]
    assert report("change") == "the change: muon_lr (0.05 -> 0.03), tied_head (null -> true)"
    for seed in (1, 2):  # a recipe file (lowlr.toml): its name is not a setting, and is said apart
        hand_log(tmp_path / "lowlr" / f"s{seed}.txt", 3.39 - seed / 700, name="lowlr",
                 recipe={"seed": seed, "muon_lr": 0.03, "steps": 100})
    assert report("lowlr") == "the change: muon_lr (0.05 -> 0.03) (recipes tiny -> lowlr)"
    assert report("same") == "the sides ran the same recipe values and code (the seeds aside)"
    with pytest.raises(SpeedrunError, match=r"^change: its runs have 2 settings"):
        report("mixed")
    hand_log(tmp_path / "code" / "s1.txt", 3.39, recipe={"seed": 1, "muon_lr": 0.05}, commit="abcdef1234")
    assert report("code") == "the change: the code (commit or source)"


def test_against_upstream_logs_only_their_known_values_are_compared(tmp_path):
    upstream = Path(__file__).parent / "data" / "upstream" / "082725_FA3"
    for seed in (1, 2):
        hand_log(tmp_path / "ours" / f"s{seed}.txt", 3.27 + seed / 1000, steps=40)
    line = compare_report([str(upstream)], [str(tmp_path / "ours")]).splitlines()[2]
    # not every field of ours as null, nor the name as a setting
    assert line == ("the change: the program (recipes upstream-082725_FA3 -> tiny); an upstream log names only its "
                    "steps, the same on both sides")


def test_an_interrupted_runs_first_part_is_one_run_with_its_resume(tmp_path):
    """Ctrl-C, then `--resume`: the first part is not a failed run left out beside its resume, but a part of it,
    said in a note; given without its resume, it is left out as the failed run it is."""
    base = logs(tmp_path / "base", {1: 3.40, 2: 3.41})
    change = logs(tmp_path / "change", {1: 3.38})
    first, resumed = interrupted_and_resumed(tmp_path / "change", 3.39, recipe={"seed": 2})
    cmp = compare([base], [change])
    assert [r.path for r in cmp.change.runs] == [resumed, tmp_path / "change" / "s1.txt"]
    assert cmp.change.left_out == [] and [r.path for r in cmp.change.joined] == [first]
    text = compare_report([base], [change])
    assert "change: 2 complete run(s), seeds 1, 2" in text and "left out" not in text
    assert (f"  note: the change's {first.name} (failed: interrupted at step 50) is the first part of "
            f"{resumed.name}, which resumed it at step 50: joined, one run") in text.splitlines()
    resumed.unlink()
    assert "left out: 1 failed" in compare_report([base], [change])


def test_rounding_noise_in_the_paired_differences_is_no_spread(tmp_path):
    """Each change ends +0.0100 over its base as logged (4 decimals), but the floats' differences are
    0.0100000000000002 and 0.0099999999999998: their 'spread' is the arithmetic's, and t was 3e13, 'significant'."""
    base = {0: 3.2710, 1: 3.2830, 2: 3.2650}
    change = {s: round(v + 0.01, 4) for s, v in base.items()}
    assert len({change[s] - base[s] for s in base}) > 1  # the floats do differ
    cmp = compare([logs(tmp_path / "base", base)], [logs(tmp_path / "change", change)])
    text = compare_report([str(tmp_path / "base")], [str(tmp_path / "change")])
    assert cmp.paired is None and "mean +0.0100 (equal differences, no spread: no test)" in text
    assert "significant at" not in text and "Welch, unpaired" in text  # the losses' own spread is real
    assert seeds_for_power([change[s] - base[s] for s in base]) is None


def test_two_runs_a_side_without_spread_say_so_not_too_few_runs(tmp_path):
    """Base 7.3000 twice, change 7.3100 twice (seeds 0 and 1): each side has its two runs; what it lacks is spread."""
    base, change = logs(tmp_path / "base", {0: 7.30, 1: 7.30}), logs(tmp_path / "change", {0: 7.31, 1: 7.31})
    text = compare_report([base], [change])
    assert "(equal differences, no spread: no test)" in text and "a side has one run" not in text
    assert "all runs (Welch): difference of means +0.0100 (each side's losses all equal, no spread: no test)" in text
    assert ("VERDICT: no test: each side's final val losses are all the same (no spread): change - base = +0.0100"
            in text) and "too few runs" not in text


def test_a_seed_that_is_no_whole_number_pairs_with_nothing(tmp_path):
    """An edited log's `"seed": "one"` (or a list): counted as stats counts it, in Welch's test; never int()'s
    traceback, nor a pair."""
    base = logs(tmp_path / "base", {1: 3.40, 2: 3.41})
    change = logs(tmp_path / "change", {1: 3.38, 2: 3.39})
    hand_log(tmp_path / "change" / "odd.txt", 3.37, recipe={"seed": "one"})
    hand_log(tmp_path / "change" / "list.txt", 3.36, recipe={"seed": [1]})
    cmp = compare([base], [change])
    assert len(cmp.change.runs) == 4 and set(cmp.pairs) == {1, 2} and cmp.welch is not None
    text = compare_report([base], [change])
    assert ("  note: the change's 2 logs with a seed that is not a whole number (list.txt: [1], odd.txt: \"one\"): "
            "not paired, counted in the Welch test") in text.splitlines()
    assert main(["stats", change]) == 0 and main(["plot", change, "--out", str(tmp_path / "p.png")]) == 0
