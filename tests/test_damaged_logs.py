"""Run logs damaged after the run (a power loss leaves NULs at a file's end; a hand edit leaves a word where a number
belongs): read as far as they are sound, or skipped with a note naming the file and line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from logfactory import hand_log

from speedrun.cli import main
from speedrun.records import new_record, rebuild_records_table
from speedrun.runlog import LogError, parse_log
from speedrun.stats import stats_report


def good_runs(folder: Path) -> None:
    for seed, loss in ((0, 3.270), (1, 3.272)):
        hand_log(folder / f"good{seed}.txt", loss, recipe={"seed": seed})


def nul_ended(path: Path) -> Path:
    """A complete log cut after its last `train_loss:` and padded with NULs, as the user's power loss left it."""
    data = hand_log(path, 3.271, recipe={"seed": 2}).read_bytes()
    path.write_bytes(data[:data.rindex(b"train_loss:") + 11] + b"\0" * 4096)
    return path


def edited(path: Path, old: str, new: str, final: float = 3.271) -> Path:
    text = hand_log(path, final, recipe={"seed": 2}).read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_log_spoilt_at_its_end_reads_as_a_crashed_run(tmp_path):
    log = parse_log(nul_ended(tmp_path / "crashed.txt"))
    assert log.status == "incomplete" and log.val[-1][0] == 75 and log.train_steps[-1][0] == 75
    good_runs(tmp_path)
    text, ok = stats_report([str(tmp_path)])
    assert ok and "n = 2" in text
    row = next(line for line in text.splitlines() if "crashed.txt" in line)
    assert "incomplete: its last line is damaged (line " in row and "not counted" in row


@pytest.mark.parametrize("old, new", [("val_loss:3.3", "val_loss:abc"), ("train_loss:", "train_loss:abc"),
                                      ("val_loss:3.3", "val_loss:3.3\0\0")])
def test_a_number_spoilt_mid_log_makes_it_malformed_naming_the_line(tmp_path, old, new):
    path = edited(tmp_path / "edited.txt", old, new)
    with pytest.raises(LogError, match=rf"^{path}: line {line_of(path, new)}: "):
        parse_log(path)
    good_runs(tmp_path)
    text, ok = stats_report([str(tmp_path)])
    row = next(line for line in text.splitlines() if "edited.txt" in line)
    assert ok and "n = 2" in text and f"malformed: line {line_of(path, new)}: " in row


@pytest.mark.parametrize("loss", ["-0.5000", "-inf"])
def test_a_negative_val_loss_is_no_result(tmp_path, loss):
    """Cross-entropy is never below 0: such a loss is an edit or damage, not a run's result (a NaN or +inf one is a
    diverged run, which the loader lists as failed)."""
    path = edited(tmp_path / "neg.txt", "val_loss:3.2710", f"val_loss:{loss}")
    with pytest.raises(LogError, match=rf"^{path}: line {line_of(path, 'step:100/100 val_loss')}: .*below 0"):
        parse_log(path)
    good_runs(tmp_path)
    text, _ = stats_report([str(tmp_path)])
    assert "n = 2" in text and "malformed: line " in text
    assert parse_log(edited(tmp_path / "inf.txt", "val_loss:3.2710", "val_loss:inf")).status == "failed"


def test_every_reader_gets_through_damaged_logs(tmp_path, capsys):
    """The user's repro: stats, plot, compare and records over a folder with a NUL-ended and an edited log."""
    logs = tmp_path / "logs"
    good_runs(logs)
    nul_ended(logs / "crashed.txt")
    bad = edited(logs / "edited.txt", "val_loss:3.3", "val_loss:abc")
    assert main(["stats", str(logs)]) == 0
    assert main(["plot", str(logs), "--out", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err
    assert f"speedrun: skipped {bad}: line {line_of(bad, 'val_loss:abc')}: " in err
    hand_log(tmp_path / "change" / "c0.txt", 3.26, recipe={"seed": 0})
    hand_log(tmp_path / "change" / "c1.txt", 3.27, recipe={"seed": 1})
    assert main(["compare", str(logs), str(tmp_path / "change")]) == 0
    out = capsys.readouterr().out
    assert "left out: 1 incomplete, edited.txt (malformed: line " in out
    records = tmp_path / "records"
    (records / "2026-01-01_damaged").mkdir(parents=True)
    for p in logs.iterdir():
        (records / "2026-01-01_damaged" / p.name).write_bytes(p.read_bytes())
    row = [line for line in rebuild_records_table(str(records)).read_text().splitlines() if "damaged" in line]
    assert "| 2 (+2 not counted) |" in row[0]
    with pytest.raises(LogError, match=rf"^{bad}: line "):
        new_record(records, "new", [str(logs)], "cmd", "cpu", date="2026-01-02")
    assert main(["records", "--dir", str(records), "--new", "again", str(logs)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_damaged_log_counts_as_a_log_and_keeps_its_row_among_many_other_files(tmp_path):
    """stats' header counted a damaged run log among "other files" (not run logs), and past five of those its row was
    folded into "... more files that are not run logs"."""
    good_runs(tmp_path)
    for i in range(6):
        (tmp_path / f"notes{i}.txt").write_text("not a run log\n")
    path = edited(tmp_path / "zz_edited.txt", "val_loss:3.3", "val_loss:abc")
    text, ok = stats_report([str(tmp_path)])
    lines = text.splitlines()
    assert ok and lines[0].startswith("3 log(s) (+6 other file(s)), ")
    assert f"malformed: line {line_of(path, 'val_loss:abc')}: " in next(line for line in lines if "zz_edited" in line)
    assert "  ... and 1 more files that are not run logs, left out (such as notes5.txt)" in lines


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x80 power \x9c\n\x81\x82\n", b"\xc3"])
def test_bytes_that_are_not_utf8_at_a_logs_end_read_as_a_crashed_run(tmp_path, garbage):
    """As NULs (above): what a power loss leaves at the end is read up to, not the whole log refused; the same bytes
    before a later step line are damage mid-log, still refused."""
    data = hand_log(tmp_path / "x.txt", 3.271, recipe={"seed": 2}).read_bytes()
    cut = data.rindex(b"train_loss:") + 11
    crashed = tmp_path / "crashed.txt"
    crashed.write_bytes(data[:cut] + garbage)
    log = parse_log(crashed)
    assert log.status == "incomplete" and log.damaged_line == data[:cut].count(b"\n") + 1
    assert log.train_steps[-1][0] < 100
    mid = tmp_path / "mid.txt"
    first_step = data.index(b"step:25/")
    mid.write_bytes(data[:first_step] + garbage + b"\n" + data[first_step:])
    with pytest.raises(LogError, match=r"cannot read: 'utf-8' codec can't decode"):
        parse_log(mid)
    (tmp_path / "x.txt").unlink()
    good_runs(tmp_path)
    text, ok = stats_report([str(tmp_path)])
    row = next(line for line in text.splitlines() if "crashed.txt" in line)
    assert ok and "n = 2" in text and "incomplete: its last line is damaged (line " in row
