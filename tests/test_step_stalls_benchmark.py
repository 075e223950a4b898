"""benchmarks/step_stalls.py: steps that took well over their neighbours, found in a run log."""

from __future__ import annotations

from benchscript import load_benchmark

from speedrun.runlog import RunLog

stalls_mod = load_benchmark("step_stalls")


def timed_log(folder, ms_of_step):
    """A complete run log whose step s took ms_of_step(s) ms."""
    steps, t = 60, 0.0
    log = RunLog(folder, "tiny", {"name": "tiny", "steps": steps})
    log.val(0, steps, 10.8, 0.0)
    for s in range(1, steps + 1):
        t += ms_of_step(s)
        log.step(s, steps, t, 5.0, 1000.0)
    log.val(steps, steps, 4.0, t)
    log.finish(True)
    return log.path


def test_a_stall_every_n_steps_is_found_with_its_spacing(tmp_path, capsys):
    # steps slow down as a window grows (70 -> 82 ms, not a stall) and every 15th step takes 30 ms more
    path = timed_log(tmp_path, lambda s: 70 + 0.2 * s + (30 if s % 15 == 0 else 0))
    assert stalls_mod.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "60 steps, median 76.5 ms; 4 stalls," in out and "at steps 15, 30, 45, 60; every 15 steps" in out
    durations = stalls_mod.step_durations(stalls_mod.parse_log(path).train_steps)
    found = stalls_mod.stalls(durations, 8.0)
    assert [s for s, _, _ in found] == [15, 30, 45, 60] and all(29 <= e <= 32 for _, e, _ in found)
    # nothing made them up: each costs its full excess (the last one has no next step)
    assert all(abs(net - e) < 1.5 for _, e, net in found)


def test_a_stall_the_next_step_makes_up_costs_nothing_net(tmp_path, capsys):
    # part 27's pattern: a host pause delays one clock reading 25 ms, the GPU keeps working, the next step reads
    # 25 ms short
    path = timed_log(tmp_path, lambda s: 70 + (25 if s % 20 == 3 else -25 if s % 20 == 4 else 0))
    assert stalls_mod.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 stalls, 75 ms over in all, 0 ms net of the next steps at steps 3, 23, 43; every 20 steps" in out


def test_a_steady_run_has_none_and_over_sets_the_bar(tmp_path, capsys):
    path = timed_log(tmp_path, lambda s: 70 + (5 if s == 33 else 0))
    assert stalls_mod.main([str(path)]) == 0
    assert "0 stalls, 0 ms over in all, 0 ms net" in capsys.readouterr().out
    assert stalls_mod.main([str(path), "--over", "4"]) == 0
    assert "1 stalls, 5 ms over in all, 5 ms net of the next steps at steps 33" in capsys.readouterr().out


def test_not_a_log_is_one_line_and_a_failing_exit(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n")
    assert stalls_mod.main([str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(str(bad)) and "\n" not in err
