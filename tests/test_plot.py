"""`speedrun plot`: a valid PNG with one line per run (or per group) plus the target on both panels."""

from __future__ import annotations

import os

import matplotlib.image
import numpy as np
import pytest
from logfactory import hand_log, runlog

from speedrun.errors import SpeedrunError
from speedrun.plot import MAX_RUN_LINES, plot_logs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600
    assert img.std() > 0.01  # something was drawn


def test_one_line_per_run(tmp_path):
    logs = tmp_path / "logs"
    done = [runlog(logs, 3.2), runlog(logs, 3.25, ms_per_step=12)]
    crashed = runlog(logs, 3.3, end=None, stop_at=50)
    out = tmp_path / "out" / "plot.png"
    fig = plot_logs([str(logs)], str(out), target=3.28)
    check_png(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["plot.png"]  # no temp file left
    assert len(fig.axes) == 2
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 3 + 1  # three runs + the target
        by_id = lambda path: next(l for l in lines if path.stem.split("_")[-1] + ")" in l.get_label())
        for p, final in zip(done, (3.2, 3.25)):
            assert by_id(p).get_linestyle() == "-" and by_id(p).get_ydata()[-1] == final
            assert by_id(p).get_label().startswith("tiny (")  # steps=100, shared by every run, is in the title
        assert by_id(crashed).get_linestyle() == ":" and "(incomplete)" in by_id(crashed).get_label()
        target = next(l for l in lines if l.get_label().startswith("target"))
        assert target.get_linestyle() == "--" and list(target.get_ydata()) == [3.28, 3.28]
        lo, hi = ax.get_ylim()
        assert lo < 3.2 and 3.3 < hi < 10  # the 10.8 at step 0 is cut off; the end of training is in view
    assert fig._suptitle.get_text().endswith("\nEvery run: steps=100")  # the field that differs from recipe tiny
    ax_t, ax_s = fig.axes
    assert ax_t.get_xlabel() == "training time (s)" and ax_s.get_xlabel() == "step"
    t = next(l for l in ax_t.get_lines() if done[1].stem.split("_")[-1] in l.get_label())
    s = next(l for l in ax_s.get_lines() if done[1].stem.split("_")[-1] in l.get_label())
    assert list(s.get_xdata()) == [0, 25, 50, 75, 100]
    assert t.get_xdata() == pytest.approx([0, 0.3, 0.6, 0.9, 1.2])  # seconds, 12 ms a step
    assert s.get_ydata()[-1] == 3.25 and "final 3.2500" in s.get_label()


def test_groups_beyond_eight_runs(tmp_path):
    a, b = "a" * 40, "b" * 40
    finals_a = [3.20, 3.21, 3.22, 3.23, 3.24]
    for i, loss in enumerate(finals_a):
        hand_log(tmp_path / f"a{i}.txt", loss, commit=a)
    for i in range(4):
        hand_log(tmp_path / f"b{i}.txt", 3.30 + i / 100, commit=b)
    hand_log(tmp_path / "crash.txt", 3.0, commit=a, end=None)
    assert 10 > MAX_RUN_LINES
    out = tmp_path / "groups.png"
    fig = plot_logs([str(tmp_path)], str(out))
    check_png(out)
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 3 + 1  # groups a, b, a-unfinished + target
        assert len(ax.collections) == 3  # a min-max band per group
        (ga,) = [l for l in lines if l.get_label().startswith("tiny @ aaaaaaaaaa: 5 runs")]  # steps=100: the title
        assert ga.get_ydata()[-1] == pytest.approx(np.mean(finals_a))
        (gu,) = [l for l in lines if "incomplete" in l.get_label()]
        assert gu.get_linestyle() == ":"
    assert fig._suptitle.get_text().endswith("\nEvery run: steps=100")
    band = fig.axes[1].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(3.20) and band.max() == pytest.approx(10.8)
    # a far target: the title's lowest loss is a run's (3.20), not group a's mean (3.22)
    (tmp_path / "crash.txt").unlink()  # its 3.0, alone in its group, would be the lowest either way
    fig = plot_logs([str(tmp_path)], str(out), target=1.0)
    assert "(the lowest run's val loss: 3.2000)" in fig.get_suptitle()


def test_no_val_points_is_an_error(tmp_path):
    hand_log(tmp_path / "empty.txt", 3.0, points=[], end=None)
    with pytest.raises(SpeedrunError, match="no val loss points"):
        plot_logs([str(tmp_path)], str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_malformed_logs_are_skipped_with_a_note(tmp_path, capsys):
    hand_log(tmp_path / "good.txt", 3.2)
    (tmp_path / "notes.txt").write_text("not a log\n")
    fig = plot_logs([str(tmp_path)], str(tmp_path / "p.png"))
    assert len(fig.axes[0].get_lines()) == 2
    assert "skipped" in capsys.readouterr().err


def test_a_copied_log_is_drawn_once(tmp_path, capsys):
    good = hand_log(tmp_path / "good.txt", 3.2)
    (tmp_path / "good_copy.txt").write_text(good.read_text())
    fig = plot_logs([str(tmp_path)], str(tmp_path / "p.png"))
    assert len(fig.axes[0].get_lines()) == 2  # the run's curve and the target line, as for one log
    assert f"skipped {tmp_path / 'good_copy.txt'}: a copy of {good}" in capsys.readouterr().err


def test_replaces_existing_file_and_rejects_unknown_type(tmp_path):
    hand_log(tmp_path / "logs" / "good.txt", 3.2)
    out = tmp_path / "p.png"
    out.write_bytes(b"old")
    plot_logs([str(tmp_path / "logs")], str(out))
    check_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "p.png"]
    with pytest.raises(SpeedrunError, match=r"unsupported image type '.xyz'; name the file with one of .*\.jpg.*\.svg"):
        plot_logs([str(tmp_path / "logs")], str(tmp_path / "p.xyz"))
    with pytest.raises(SpeedrunError, match="no suffix to tell the image type"):  # not a PNG under another name
        plot_logs([str(tmp_path / "logs")], str(tmp_path / "plot"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "p.png"]
    plot_logs([str(tmp_path / "logs")], str(tmp_path / "p.jpg"))  # any type matplotlib writes, as the help says
    assert (tmp_path / "p.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_pgf_without_its_tex_system_is_refused_up_front(tmp_path, monkeypatch):
    """matplotlib writes .pgf through a TeX program (xelatex by default); without it the user saw `x.pgf: No such
    file or directory`, the program's absence said of the image."""
    import speedrun.plot as plot_mod

    hand_log(tmp_path / "logs" / "good.txt", 3.2)
    monkeypatch.setattr(plot_mod.shutil, "which", lambda name: None)
    with pytest.raises(SpeedrunError, match=r"^--out .*x\.pgf: matplotlib writes \.pgf through xelatex, which is not "
                                            r"installed here; name a \.pdf or \.svg file$"):
        plot_logs([str(tmp_path / "logs")], str(tmp_path / "x.pgf"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def test_labels_show_data_files_and_never_a_step0_loss_as_final(tmp_path):
    hand_log(tmp_path / "demo.txt", 3.2, steps=120, recipe=dict(train_files="demo", val_files="demo"))
    hand_log(tmp_path / "mine.txt", 3.25, steps=120, recipe=dict(train_files="data/mine", val_files="data/mine"))
    hand_log(tmp_path / "early.txt", 3.0, steps=120, points=[(0, 10.8, 0)], end=None,  # died before step 30
             recipe=dict(train_files="demo", val_files="demo"))
    fig = plot_logs([str(tmp_path)], str(tmp_path / "p.png"))
    labels = sorted(l.get_label() for l in fig.axes[1].get_lines())
    assert labels == ["target 3.28", "tiny (demo): final 3.2000",  # early's step-0 loss alone is left out
                      "tiny train_files=data/mine val_files=data/mine (mine): final 3.2500"]


def test_runs_with_only_a_step0_val_are_left_out_and_alone_are_an_error(tmp_path, capsys):
    """Step 0's loss is the untrained model's: a run with no val after it has nothing to draw (stats counts none of
    them either). Alone, they are one error line and no image, not a chart of lone points."""
    for i in range(2):
        hand_log(tmp_path / f"early{i}.txt", 3.0, points=[(0, 10.8, 0)], end="failed: interrupted at step 1")
    with pytest.raises(SpeedrunError, match="^no val loss points after step 0 to plot in"):
        plot_logs([str(tmp_path)], str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()
    assert "skipped " + str(tmp_path / "early0.txt") + ": no val loss after step 0 (failed)" in capsys.readouterr().err


def test_the_title_says_what_is_cut_off_the_top_only_when_it_is(tmp_path):
    hand_log(tmp_path / "a.txt", 3.2, points=[(0, 9.5, 0), (25, 5.0, 250), (50, 4.0, 500), (75, 3.5, 750),
                                              (100, 3.2, 1000)])
    title = plot_logs([str(tmp_path)], str(tmp_path / "p.png"))._suptitle.get_text()
    assert "the early losses (up to 9.5, at step 0) are off the top" in title and "10.8" not in title
    hand_log(tmp_path / "a.txt", 3.2, points=[(50, 3.4, 500), (100, 3.2, 1000)])  # nothing above the axis
    assert "off the top" not in plot_logs([str(tmp_path)], str(tmp_path / "p.png"))._suptitle.get_text()


def test_settings_every_run_shares_go_in_the_title(tmp_path):
    track = dict(train_files="track/train_*.bin", val_files="track/val.bin")
    hand_log(tmp_path / "a.txt", 3.2, steps=120, recipe=track)
    hand_log(tmp_path / "b.txt", 3.25, steps=150, recipe=track)
    fig = plot_logs([str(tmp_path)], str(tmp_path / "p.png"), target=3.22)
    labels = sorted(l.get_label() for l in fig.axes[1].get_lines())
    assert labels == ["target 3.22", "tiny (a): final 3.2000", "tiny steps=150 (b): final 3.2500"]
    assert "\nEvery run: train_files=track/train_*.bin val_files=track/val.bin" in fig._suptitle.get_text()


def test_seeds_of_one_setting_say_it_once_and_label_each_seed(tmp_path):
    # a record: one recipe and settings at three seeds, each run ending at the right edge of both panels
    track = dict(train_files="track/train_*.bin", val_files="track/val.bin")
    for seed, final in ((21, 3.2), (22, 3.21), (23, 3.22)):
        hand_log(tmp_path / f"s{seed}.txt", final, steps=120, recipe={**track, "seed": seed})
    fig = plot_logs([str(tmp_path)], str(tmp_path / "p.png"), target=3.25)
    labels = sorted(l.get_label() for l in fig.axes[1].get_lines())
    assert labels == ["target 3.25", "tiny seed=21 (s21): final 3.2000", "tiny seed=22 (s22): final 3.2100",
                      "tiny seed=23 (s23): final 3.2200"]
    assert fig._suptitle.get_text().endswith("\nEvery run: train_files=track/train_*.bin val_files=track/val.bin")
    for ax in fig.axes:  # the last points (the final losses) sit inside the axes, not on their edge
        last = max(l.get_xdata()[-1] for l in ax.get_lines() if not l.get_label().startswith("target"))
        assert last < ax.get_xlim()[1] and ax.get_xlim()[0] == 0


def test_far_target_is_left_out(tmp_path):
    """Tiny CPU runs end near 5.5: a 3.28 line would squash their curves into the top third; it is left out (and the
    title says so), and the y limits hug the losses. A target close to the best loss is still drawn."""
    for final in (5.5, 5.8):
        hand_log(tmp_path / "tiny" / f"{final}.txt", final)
    fig = plot_logs([str(tmp_path / "tiny")], str(tmp_path / "tiny.png"), target=3.28)
    for ax in fig.axes:
        assert [l.get_label() for l in ax.get_lines() if l.get_label().startswith("target")] == []
        lo, hi = ax.get_ylim()
        assert 5.0 < lo < 5.5 and 7.5 < hi < 8.5  # curve(5.5): 7.74 at step 25 (the first from 20% on)
    assert "Target 3.28 not drawn: far below these losses (the lowest run's val loss: 5.5000)" in fig.get_suptitle()
    # runs ending at 3.40-3.45, target 3.28: near, drawn and in view
    for final in (3.40, 3.45):
        hand_log(tmp_path / "near" / f"{final}.txt", final)
    fig = plot_logs([str(tmp_path / "near")], str(tmp_path / "near.png"), target=3.28)
    for ax in fig.axes:
        assert [list(l.get_ydata()) for l in ax.get_lines() if l.get_label() == "target 3.28"] == [[3.28, 3.28]]
        assert ax.get_ylim()[0] < 3.28
    assert "not drawn" not in fig.get_suptitle()


def test_unwritable_output_is_one_line_before_any_work(tmp_path, monkeypatch):
    import speedrun.files as files_module
    from speedrun.cli import main

    hand_log(tmp_path / "logs" / "a.txt", 3.2)
    (tmp_path / "FILE").write_text("a file, not a folder\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for out in (tmp_path / "FILE" / "x.png", tmp_path / "FILE" / "sub" / "x.png"):
        with pytest.raises(SpeedrunError, match=f"^--out {out}: {tmp_path / 'FILE'} is a file, not a folder$"):
            plot_logs([str(tmp_path / "logs")], str(out))
    with pytest.raises(SpeedrunError, match="is a folder; name the image file"):
        plot_logs([str(tmp_path / "logs")], str(tmp_path / "logs"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written

    def no_write(path, mode="r", *args, **kwargs):  # what a read-only folder answers (root ignores chmod)
        if "x" in mode or "w" in mode:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(files_module, "open", no_write, raising=False)
    with pytest.raises(SpeedrunError, match=f"^--out {tmp_path / 'ro' / 'x.png'}: no permission to write in {tmp_path}$"):
        plot_logs([str(tmp_path / "logs")], str(tmp_path / "ro" / "x.png"))
    monkeypatch.undo()
    assert not (tmp_path / "ro").exists()  # nothing made

    # the command line: one line, exit 2, no traceback
    assert main(["plot", str(tmp_path / "logs"), "--out", str(tmp_path / "FILE" / "x.png")]) == 2
    # missing folders are made
    plot_logs([str(tmp_path / "logs")], str(tmp_path / "new" / "deeper" / "p.png"))
    check_png(tmp_path / "new" / "deeper" / "p.png")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    hand_log(tmp_path / "logs" / "a.txt", 3.2)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(SpeedrunError, match=f"^--out {ro / 'x.png'}: no permission to write in {ro}$"):
            plot_logs([str(tmp_path / "logs")], str(ro / "x.png"))
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_cli_writes_val_loss_png_by_default(tmp_path, monkeypatch, capsys):
    from speedrun.cli import main
    runlog(tmp_path / "logs", 3.2)
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "logs"]) == 0
    check_png(tmp_path / "val_loss.png")
    assert capsys.readouterr().out.strip() == "wrote val_loss.png"
    (tmp_path / "val_loss.png").unlink()
    assert main(["plot"]) == 0  # the logs where `speedrun train` writes them
    check_png(tmp_path / "val_loss.png")


def test_cli_out_has_the_usual_short_form(tmp_path, monkeypatch):
    from speedrun.cli import main
    runlog(tmp_path / "logs", 3.2)
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "logs", "-o", "curves.svg"]) == 0
    assert (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")


def test_a_resumed_run_is_joined_to_its_first_part(tmp_path, capsys):
    """A resumed log holds the steps after its checkpoint: drawn alone it is a lone point. With its first part's
    log given, the two are one line from step 0 (the first part is not drawn again); without, the label says so."""
    from logfactory import curve

    folder = tmp_path / "logs"
    first = hand_log(folder / "x_first.txt", 3.2, end="failed: interrupted at step 50",
                     points=[p for p in curve(3.2) if p[0] <= 50])
    resumed = hand_log(folder / "y_resumed.txt", 3.2, points=[p for p in curve(3.2) if p[0] > 50])
    resumed.write_text(resumed.read_text().replace(
        "=== steps ===\n", "=== steps ===\nnote: resumed from c.pt at step 50 (earlier steps: log logs/x_first.txt)\n"))
    fig = plot_logs([str(folder)], str(tmp_path / "p.png"))
    (line,) = [l for l in fig.axes[1].get_lines() if not l.get_label().startswith("target")]
    assert list(line.get_xdata()) == [0, 25, 50, 75, 100] and "y resumed" not in line.get_label()
    assert f"skipped {first}: its run goes on in {resumed}, drawn as one line" in capsys.readouterr().err
    fig = plot_logs([str(resumed)], str(tmp_path / "p.png"))
    (line,) = [l for l in fig.axes[1].get_lines() if not l.get_label().startswith("target")]
    assert "(resumed at step 50; its first part's log not given)" in line.get_label()


def test_a_finished_run_a_resume_branched_off_is_drawn_as_its_own_line(tmp_path, capsys):
    """A resume from a periodic checkpoint of a run that went on to finish branches off it: both are drawn, the
    branch from step 0 (the finished run's first steps are its own too), and the finished run is not skipped."""
    from logfactory import resumed_log

    folder = tmp_path / "logs"
    finished = hand_log(folder / "x_finished.txt", 3.2, recipe={"seed": 1})
    resumed_log(folder / "y_branch.txt", 3.25, 50, finished, recipe={"seed": 1})
    fig = plot_logs([str(folder)], str(tmp_path / "p.png"))
    lines = [l for l in fig.axes[1].get_lines() if not l.get_label().startswith("target")]
    assert [list(line.get_xdata()) for line in lines] == [[0, 25, 50, 75, 100]] * 2
    assert "skipped" not in capsys.readouterr().err


def test_nine_runs_of_one_setting_are_one_group_in_the_title(tmp_path):
    for seed in range(9):
        hand_log(tmp_path / f"s{seed}.txt", 3.2 + seed / 1000, recipe={"seed": seed})
    fig = plot_logs([str(tmp_path)], str(tmp_path / "p.png"))
    assert fig.get_suptitle().startswith("Validation loss, 9 runs in 1 group: mean line, min–max band.")
    assert [l.get_label() for l in fig.axes[1].get_lines()][0].startswith("tiny @ unknown: 9 runs, mean final ")
