"""`records/`: new_record makes a record folder; rebuild_records_table regenerates records/README.md from the logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import scipy.stats
from logfactory import hand_log, interrupted_and_resumed, runlog

from speedrun.errors import SpeedrunError
from speedrun.records import new_record, rebuild_records_table
from speedrun.runlog import LogError, logged_command
from speedrun.stats import format_p

REPO_RECORDS = Path(__file__).resolve().parents[1] / "records"


def table_rows(readme: Path) -> list[list[str]]:
    rows = [l for l in readme.read_text().splitlines() if l.startswith("| ")][1:]  # without the header
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows]


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_new_record_and_table(tmp_path):
    src = tmp_path / "src"
    finals = [3.2700, 3.2650, 3.2720]
    for i, loss in enumerate(finals):
        hand_log(src / f"run{i}.txt", loss, gpu="NVIDIA H100 80GB HBM3 x 8", ms_per_step=100 + i)
    records = tmp_path / "records"
    records.mkdir()
    folder = new_record(records, "fast-thing", [str(src)], command="speedrun train --recipe tiny",
                        device="8x H100", date="2026-01-02")
    assert folder == records / "2026-01-02_fast-thing"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "run0.txt", "run1.txt", "run2.txt", "val_loss.png"]
    assert (folder / "val_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (folder / "run1.txt").read_text() == (src / "run1.txt").read_text()
    readme = (folder / "README.md").read_text()
    assert "- command: `speedrun train --recipe tiny`" in readme and "- device: 8x H100" in readme
    assert "- target: 3.28" in readme and "VERDICT: mean 3.2690 < 3.28" in readme
    p = scipy.stats.ttest_1samp(finals, 3.28, alternative="less").pvalue
    (row,) = table_rows(records / "README.md")  # new_record rebuilt the table
    assert row == ["2026-01-02", "[fast-thing](2026-01-02_fast-thing/)", "tiny", "8x NVIDIA H100 80GB HBM3", "3",
                   "3.2690", "3.28", format_p(p) + " (not < 0.01)", "10.1"]
    assert no_temp_files(records)


def test_new_record_device_defaults_to_the_logs(tmp_path):
    for i, loss in enumerate((3.25, 3.26)):
        hand_log(tmp_path / "src" / f"r{i}.txt", loss, gpu="NVIDIA H200 x 1")
    folder = new_record(tmp_path / "records", "no-device", [str(tmp_path / "src")], command="c", device="",
                        date="2026-01-02")
    assert "- device: 1x NVIDIA H200\n" in (folder / "README.md").read_text()
    (row,) = table_rows(tmp_path / "records" / "README.md")
    assert row[3] == "1x NVIDIA H200"  # the table and the README name the same machine


def test_rebuild_lists_every_record(tmp_path):
    records = tmp_path / "records"
    hand_log(records / "2026-02-01_one-run" / "a.txt", 3.30)
    (records / "2026-02-01_one-run" / "README.md").write_text("# one\n\n- target: 3.41\n")
    for i, loss in enumerate((3.25, 3.26)):
        hand_log(records / "2026-01-15_two-runs" / f"r{i}.txt", loss, name="record21", gpu="NVIDIA H200 x 1")
    hand_log(records / "2026-01-15_two-runs" / "crashed.txt", 3.0, name="record21", end=None)
    hand_log(records / "2026-03-01_all-failed" / "f.txt", 3.0, end="failed: oom")
    (records / "scratch").mkdir()
    path = rebuild_records_table(str(records))
    assert path == records / "README.md"
    rows = table_rows(path)
    assert [r[0] for r in rows] == ["2026-01-15", "2026-02-01", "2026-03-01"]  # by date
    two, one, failed = rows
    p = scipy.stats.ttest_1samp([3.25, 3.26], 3.28, alternative="less").pvalue
    assert two == ["2026-01-15", "[two-runs](2026-01-15_two-runs/)", "record21", "1x NVIDIA H200",
                   "2 (+1 not counted)", "3.2550", "3.28", format_p(p) + " (not < 0.01)", "1.0"]
    assert one[2:] == ["tiny", "cpu", "1", "3.3000", "3.41", "— (n < 2: no test)", "1.0"]  # per-record target
    assert failed[4:] == ["0 (+1 not counted)", "—", "3.28", "—", "—"]
    text = path.read_text()
    assert text.startswith("# Records\n") and "Ignored (not named YYYY-MM-DD_short-name): scratch" in text
    assert rebuild_records_table(str(records)).read_text() == text  # no dates or clocks: rebuilds are stable
    assert no_temp_files(records)


def test_a_record_of_several_groups_is_judged_on_its_largest(tmp_path):
    """A record is a claim about one recipe, settings and code: where a folder's runs are several such groups (here
    a modified checkout whose code changed between runs), the row judges the largest group and counts the others
    apart, never the pool; among groups of one size the earliest run's is shown."""
    records, b = tmp_path / "records", "b" * 40 + " (modified)"
    hand_log(records / "2026-01-01_mixed" / "r0.txt", 3.20, commit=b, code={"speedrun/x.py": "old"})
    for i, loss in enumerate((3.25, 3.26)):
        hand_log(records / "2026-01-01_mixed" / f"r{i + 1}.txt", loss, commit=b, code={"speedrun/x.py": "new"})
    hand_log(records / "2026-01-02_singles" / "a.txt", 3.30, code={"speedrun/x.py": "old"})
    hand_log(records / "2026-01-02_singles" / "b.txt", 3.10, code={"speedrun/x.py": "new"})
    mixed, singles = table_rows(rebuild_records_table(str(records)))
    p = scipy.stats.ttest_1samp([3.25, 3.26], 3.28, alternative="less").pvalue  # the pool's would be 0.0183
    assert mixed[4:8] == ["2 (+1 of other code or settings)", "3.2550", "3.28", format_p(p) + " (not < 0.01)"]
    assert singles[4:8] == ["1 (+1 of other code or settings)", "3.3000", "3.28", "— (n < 2: no test)"]


def test_new_record_refuses_runs_of_several_groups(tmp_path):
    hand_log(tmp_path / "src" / "a.txt", 3.20, steps=100)
    hand_log(tmp_path / "src" / "b.txt", 3.21, steps=120)
    records = tmp_path / "records"
    with pytest.raises(SpeedrunError, match="2 groups .* a record holds runs of one recipe, settings and code"):
        new_record(records, "x", [str(tmp_path / "src")], "cmd", "cpu", date="2026-01-01")
    assert not records.exists() or not any(records.iterdir())


def test_empty_records_folder(tmp_path):
    path = rebuild_records_table(str(tmp_path))
    assert table_rows(path) == [] and "(no records yet)" in path.read_text()


def test_refusals(tmp_path):
    with pytest.raises(SpeedrunError, match="no such folder"):
        rebuild_records_table(str(tmp_path / "missing"))
    hand_log(tmp_path / "src" / "a.txt", 3.2)
    (tmp_path / "junk.txt").write_text("junk\n")
    records = tmp_path / "records"
    new_record(records, "x", [str(tmp_path / "src")], "cmd", "cpu", date="2026-01-01")
    with pytest.raises(SpeedrunError, match="already exists"):
        new_record(records, "x", [str(tmp_path / "src")], "cmd", "cpu", date="2026-01-01")
    with pytest.raises(LogError, match="not a speedrun run log"):
        new_record(records, "y", [str(tmp_path / "junk.txt")], "cmd", "cpu", date="2026-01-01")
    hand_log(tmp_path / "crashed" / "c.txt", 3.2, end=None)
    with pytest.raises(SpeedrunError, match=r"^no complete run among the 1 log\(s\): a record holds finished runs"):
        new_record(records, "z", [str(tmp_path / "crashed")], "cmd", "cpu", date="2026-01-01")
    with pytest.raises(SpeedrunError, match="want YYYY-MM-DD_NAME"):
        new_record(records, "bad name", [str(tmp_path / "src")], "cmd", "cpu", date="2026-01-01")
    assert sorted(p.name for p in records.iterdir()) == ["2026-01-01_x", "README.md"]  # nothing half-made


def test_repository_records_table_is_current(tmp_path):
    """records/README.md in the repository is what `speedrun records` builds from its record folders."""
    if not (REPO_RECORDS / "README.md").is_file():
        pytest.skip("no records/ folder")
    copy = shutil.copytree(REPO_RECORDS, tmp_path / "records")
    assert rebuild_records_table(str(copy)).read_text() == (REPO_RECORDS / "README.md").read_text()
    assert len(table_rows(copy / "README.md")) == len([p for p in REPO_RECORDS.iterdir() if p.is_dir()])


def test_records_new_from_the_command_line(tmp_path, monkeypatch, capsys):
    import time as _time

    from speedrun.cli import main

    src = tmp_path / "src"
    hand_log(src / "a.txt", 3.40, gpu="NVIDIA H100 80GB HBM3 x 1")
    hand_log(src / "b.txt", 3.39, gpu="NVIDIA H100 80GB HBM3 x 1")
    records = tmp_path / "records"
    code = main(["records", "--dir", str(records), "--new", "track-run", str(src), "--command", "speedrun train",
                 "--device", "1x H100", "--target", "3.41"])
    assert code == 0
    err = capsys.readouterr().err  # two runs, p about 0.1: written, and said not to meet the bar
    assert err.startswith("note: its runs do not meet the record bar (a mean below 3.41 with p < 0.01): mean 3.3950, p = "), err
    folder = records / f"{_time.strftime('%Y-%m-%d')}_track-run"
    assert f"`speedrun stats {records / folder.name} --target 3.41`" in (folder / "README.md").read_text()
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "a.txt", "b.txt", "val_loss.png"]
    assert "- target: 3.41" in (folder / "README.md").read_text()
    (row,) = table_rows(records / "README.md")
    assert row[2:7] == ["tiny", "1x NVIDIA H100 80GB HBM3", "2", "3.3950", "3.41"]
    assert main(["records", "--dir", str(records), "--new", "no-logs"]) == 2
    assert capsys.readouterr().err.strip().startswith("speedrun: error: records --new NAME LOG...")


def test_upstream_logs_in_a_record_folder(tmp_path):
    """A record folder may hold the upstream NanoGPT speedrun's own logs: the table reads them like ours."""
    records = tmp_path / "records"
    upstream = Path(__file__).parent / "data" / "upstream" / "082725_FA3"
    shutil.copytree(upstream, records / "2025-08-27_upstream-fa3")
    (row,) = table_rows(rebuild_records_table(str(records)))
    finals = [3.2782, 3.2769, 3.2790]
    p = scipy.stats.ttest_1samp(finals, 3.28, alternative="less").pvalue
    assert row[:7] == ["2025-08-27", "[upstream-fa3](2025-08-27_upstream-fa3/)", "upstream-2025-08-27_upstream-fa3",
                       "8x NVIDIA H100 80GB HBM3", "3 (+2 not counted)", "3.2780", "3.28"]
    assert row[7] == format_p(p) + (" (not < 0.01)" if p >= 0.01 else "")


def test_hand_written_target_lines(tmp_path):
    records = tmp_path / "records"
    hand_log(records / "2026-02-01_one" / "a.txt", 3.30)
    readme = records / "2026-02-01_one" / "README.md"
    readme.write_text("# one\n\n- target: 3.41.\n")  # a sentence's full stop
    rebuild_records_table(str(records))
    assert table_rows(records / "README.md")[0][6] == "3.41"
    readme.write_text("# one\n\n- target: abc\n")
    with pytest.raises(SpeedrunError, match=r"README.md: '- target: abc' is not a number"):
        rebuild_records_table(str(records))


def test_record_names_are_checked_as_given(tmp_path):
    hand_log(tmp_path / "src" / "a.txt", 3.25)
    with pytest.raises(SpeedrunError, match=r"^record 2026-01-02_\.\./escape: want YYYY-MM-DD_NAME"):
        new_record(tmp_path / "records", "../escape", [str(tmp_path / "src")], command="", device="", date="2026-01-02")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "records").exists()
    folder = new_record(tmp_path / "records", "ok", [str(tmp_path / "src")], command="", device="", date="2026-01-02")
    assert "- command: (not given)\n" in (folder / "README.md").read_text()


def test_a_record_refuses_a_copy_and_names_a_degenerate_p(tmp_path):
    """A record holds each run once; a table row whose losses are all equal says its p-value is degenerate."""
    src = tmp_path / "src"
    first = hand_log(src / "a.txt", 3.20)
    hand_log(src / "b.txt", 3.21)
    (src / "a_copy.txt").write_text(first.read_text())
    with pytest.raises(SpeedrunError, match=r"a_copy.txt: a copy of .*a.txt; a record holds each run once"):
        new_record(tmp_path / "records", "x", [str(src)], "cmd", "cpu", date="2026-01-01")
    assert not (tmp_path / "records" / "2026-01-01_x").exists()
    same = tmp_path / "same"
    for name in ("a", "b"):
        hand_log(same / f"{name}.txt", 3.20)  # equal losses, two runs (their texts differ)
    new_record(tmp_path / "records", "same", [str(same)], "cmd", "cpu", date="2026-01-02")
    [row] = table_rows(tmp_path / "records" / "README.md")
    assert row[4] == "2" and row[7] == "0.0000 (degenerate: every loss equal)"


def test_an_interrupted_run_and_its_resume_are_one_run_in_a_record(tmp_path):
    """The first part of a resumed run is a part of it: the table counts no run that is not counted beside it."""
    src = tmp_path / "src"
    interrupted_and_resumed(src, 3.20, recipe={"seed": 1})
    hand_log(src / "other.txt", 3.22, recipe={"seed": 2})
    folder = new_record(tmp_path / "records", "resumed", [str(src)], "cmd", "cpu", date="2026-01-01")
    [row] = table_rows(tmp_path / "records" / "README.md")
    assert row[4] == "2" and "run_a.txt (failed: interrupted at step 50) is the first part of run_b.txt" in (
        folder / "README.md").read_text()


def test_a_record_refuses_a_deterministic_rerun(tmp_path):
    folder = tmp_path / "logs"
    for loss in (3.20, 3.22):
        runlog(folder, loss)
    first, again = runlog(tmp_path / "a", 3.21, rerun=True), runlog(tmp_path / "b", 3.21, rerun=True)
    with pytest.raises(SpeedrunError, match=rf"^{again}: repeats {first} loss for loss \(same seed, deterministic\); "
                                            r"a record holds each run once$"):
        new_record(tmp_path / "records", "rerun", [str(folder), str(first), str(again)], "cmd", "cpu")


def test_a_rebuild_keeps_the_users_text_around_the_table(tmp_path):
    """`speedrun records` rebuilds the table only: notes a user wrote above or below it stay, also in a README
    written before the table had its marks, and in one that never had a table."""
    records = tmp_path / "records"
    hand_log(records / "2026-02-01_one-run" / "a.txt", 3.30)
    readme = rebuild_records_table(str(records))
    readme.write_text("My own notes.\n" + readme.read_text() + "A line at the end.\n")
    hand_log(records / "2026-03-01_later" / "b.txt", 3.31)
    text = rebuild_records_table(str(records)).read_text()
    assert text.startswith("My own notes.\n# Records\n") and text.endswith("-->\nA line at the end.\n")
    assert [r[1] for r in table_rows(readme)] == ["[one-run](2026-02-01_one-run/)", "[later](2026-03-01_later/)"]
    # before the marks: the old table (header to its last note) is replaced in place
    old_style = text.split("<!--")[0] + "| date | record |\n|---|---|\n| old | row |\n\nIgnored (x): y\n\nAfter.\n"
    readme.write_text(old_style)
    text = rebuild_records_table(str(records)).read_text()
    assert "| old | row |" not in text and "Ignored (x)" not in text and text.endswith("-->\n\nAfter.\n")
    assert text.startswith("My own notes.\n# Records\n") and len(table_rows(readme)) == 2
    readme.write_text("Only my text.\n")  # no table at all: it goes after the text
    assert rebuild_records_table(str(records)).read_text().startswith("Only my text.\n\n<!-- speedrun records")


def test_a_record_without_command_takes_the_one_its_logs_name(tmp_path):
    import sys

    for loss in (3.20, 3.22):
        runlog(tmp_path / "src", loss)  # RunLog writes `command: <this process's argv>` into each log
    folder = new_record(tmp_path / "records", "cmd", [str(tmp_path / "src")], command="", device="", date="2026-01-02")
    assert f"- command (from the logs): `{logged_command(sys.argv)}`\n" in (folder / "README.md").read_text()
    # repeats at other seeds name several commands: each is listed
    for seed in (1, 2):
        hand_log(tmp_path / "seeds" / f"s{seed}.txt", 3.2 + seed / 100, recipe={"seed": seed})
        path = tmp_path / "seeds" / f"s{seed}.txt"
        path.write_text(path.read_text().replace("git_commit:", f"command: speedrun train --set seed={seed}\ngit_commit:"))
    folder = new_record(tmp_path / "records", "seeds", [str(tmp_path / "seeds")], command="", device="", date="2026-01-02")
    assert ("- commands (from the logs): `speedrun train --set seed=1`; `speedrun train --set seed=2`\n"
            in (folder / "README.md").read_text())


def test_a_skipped_logs_note_names_the_users_path(tmp_path, capsys):
    """The plot of a new record skips a log with nothing to draw: its note names the log the user gave, never the
    hidden folder the record is filled in."""
    for i, loss in enumerate((3.20, 3.21)):
        hand_log(tmp_path / "src" / f"r{i}.txt", loss)
    early = hand_log(tmp_path / "src" / "early.txt", 3.0, points=[(0, 10.8, 0)], end="failed: interrupted at step 1")
    new_record(tmp_path / "records", "skip", [str(tmp_path / "src")], "cmd", "cpu", date="2026-01-02")
    err = capsys.readouterr().err
    assert f"speedrun: skipped {early}: " in err and ".tmp" not in err


def test_a_records_dir_that_is_a_file_is_said_to_be_one(tmp_path):
    hand_log(tmp_path / "src" / "a.txt", 3.2)
    (tmp_path / "file").write_text("x\n")
    for d in ("file", "file/sub"):
        with pytest.raises(SpeedrunError, match=rf"^{tmp_path / d}: {'' if d == 'file' else f'{tmp_path}/file '}is a "
                                                rf"file, not a folder \(records live in"):
            rebuild_records_table(str(tmp_path / d))
        with pytest.raises(SpeedrunError, match=rf"^{tmp_path / d}: .*is a file, not a folder"):
            new_record(tmp_path / d, "x", [str(tmp_path / "src")], "cmd", "cpu", date="2026-01-01")
    with pytest.raises(SpeedrunError, match="no such folder"):
        rebuild_records_table(str(tmp_path / "missing"))


def test_a_full_disk_names_the_records_file_being_written_not_the_source(tmp_path, monkeypatch, capsys):
    """shutil's copy names the source first on ENOSPC (its sendfile sets filename to it, filename2 to the
    destination): the error is the destination's, the record's copy, and the rollback leaves nothing."""
    import errno
    import os
    import time as _time

    from speedrun.cli import main

    src = hand_log(tmp_path / "src" / "a.txt", 3.40)
    hand_log(tmp_path / "src" / "b.txt", 3.39)
    records = tmp_path / "records"
    records.mkdir()

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "sendfile", full)
    assert main(["records", "--dir", str(records), "--new", "x", str(src.parent)]) == 1
    record = records / f"{_time.strftime('%Y-%m-%d')}_x"
    assert capsys.readouterr().err == f"speedrun: error: {record / 'a.txt'}: No space left on device\n"
    assert list(records.iterdir()) == []
