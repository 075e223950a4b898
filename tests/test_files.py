"""Safe writes: output folders checked before any work; files renamed into place only when whole."""

import signal

import pytest
from conftest import killed_mid_write

from speedrun.errors import SpeedrunError
from speedrun.files import check_writable_folder, remove_stale_temps, say_removed, write_atomic


class OwnError(SpeedrunError):
    pass


def test_writable_folder_checks(tmp_path, monkeypatch):
    """One check for every output folder (train's --log-dir and --checkpoint-dir, tokenize --out, plot --out)."""
    made = check_writable_folder(tmp_path / "new" / "deeper", "--log-dir")  # may be made: fine, and nothing is made
    assert list(tmp_path.iterdir()) == [] and made == [tmp_path / "new", tmp_path / "new" / "deeper"]
    assert check_writable_folder(tmp_path, "--log-dir") == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpeedrunError, match=r"^--out .*f/sub: .*f is a file, not a folder$"):
        check_writable_folder(tmp_path / "f" / "sub", "--out")
    with pytest.raises(OwnError, match=r"^--out .*/f: exists and is not a folder$"):
        check_writable_folder(tmp_path / "f", "--out", OwnError)
    # the folder of a file the user named: the message names the file
    with pytest.raises(SpeedrunError, match=r"^--out .*f/x.png: .*f is a file, not a folder$"):
        check_writable_folder(tmp_path / "f", "--out", shown=tmp_path / "f" / "x.png")
    import speedrun.files as files_module

    def refuse(errno_, why):
        def open_(path, mode="r", *args, **kwargs):  # what a folder without rights / on a read-only mount answers
            raise OSError(errno_, why, str(path)) if errno_ != 13 else PermissionError(errno_, why, str(path))
        return open_

    monkeypatch.setattr(files_module, "open", refuse(13, "Permission denied"), raising=False)
    with pytest.raises(SpeedrunError, match=f"^--checkpoint-dir {tmp_path / 'x'}: no permission to write in {tmp_path}$"):
        check_writable_folder(tmp_path / "x", "--checkpoint-dir")
    monkeypatch.setattr(files_module, "open", refuse(30, "Read-only file system"), raising=False)
    with pytest.raises(SpeedrunError, match=r"^--log-dir .*: cannot create a file in .* \(Read-only file system\)$"):
        check_writable_folder(tmp_path / "x", "--log-dir")


@pytest.mark.parametrize("durable", [False, True])
def test_write_atomic_leaves_the_old_file_or_the_whole_new_one(tmp_path, durable):
    path = tmp_path / "sub" / "out.bin"
    assert write_atomic(path, lambda f: f.write(b"first"), durable=durable) == path
    assert path.read_bytes() == b"first"

    def half_then_fail(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(path, half_then_fail, durable=durable)
    assert path.read_bytes() == b"first" and sorted(p.name for p in path.parent.iterdir()) == ["out.bin"]


def test_a_full_disk_is_an_os_error_about_the_file_whatever_the_writer_raised(tmp_path):
    """torch.save turns a full disk into a RuntimeError; the CLI says an OSError with a file name in one line."""
    import errno

    def torch_like(f):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") from e

    with pytest.raises(OSError) as caught:
        write_atomic(tmp_path / "ckpt.pt", torch_like)
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(tmp_path / "ckpt.pt"))
    assert list(tmp_path.iterdir()) == []  # no temporary file left
    with pytest.raises(ValueError):  # anything else goes up as it was
        write_atomic(tmp_path / "x", lambda f: int("x"))

    def runs_a_missing_program(f):  # matplotlib's .pgf through a TeX program that is not installed
        import subprocess

        subprocess.run(["speedrun-no-such-program"], check=True)

    with pytest.raises(FileNotFoundError) as caught:  # the program's absence, not said of the file being written
        write_atomic(tmp_path / "x.pgf", runs_a_missing_program)
    assert caught.value.filename == "speedrun-no-such-program" and list(tmp_path.iterdir()) == []


def test_a_run_log_that_cannot_be_written_names_itself(tmp_path):
    import errno

    from speedrun.runlog import RunLog

    log = RunLog(tmp_path, "tiny", {"name": "tiny", "steps": 1})

    class FullDisk:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    log._f.close()
    log._f = FullDisk()
    with pytest.raises(OSError) as caught:
        log.note("x")
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(log.path))
    log.finish(False, "later writes are dropped, not raised again")


def test_a_folder_that_takes_no_files_is_refused_even_for_root(tmp_path):
    # os.access lets root "write" in /proc; the probe file finds out. Not root: refused by os.access first.
    with pytest.raises(SpeedrunError, match=r"^--checkpoint-dir /proc/ckpt: (cannot create a file in|no permission to "
                                            r"write in) /proc"):
        check_writable_folder("/proc/ckpt", "--checkpoint-dir")
    assert check_writable_folder(tmp_path, "--log-dir") == [] and not list(tmp_path.iterdir())  # the probe is gone


def test_a_killed_writers_leftovers_are_removed_and_a_live_writers_kept(tmp_path):
    """SIGKILL mid-write leaves write_atomic's hidden file (no `finally` runs); remove_stale_temps removes it once its
    writer is gone, and never a live writer's, another host's, or a hidden file of another kind."""
    proc, left = killed_mid_write(tmp_path, folder_too=True)
    assert len(left) == 2 and {p.is_dir() for p in left} == {True, False}
    assert remove_stale_temps(tmp_path) == []  # its writer is alive: a file still being written
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in left)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    other_host = tmp_path / f".ckpt.pt.{proc.pid}@another-host.0123abcd.tmp"
    other_host.write_bytes(b"a shared file system: another machine's")
    unrelated = tmp_path / ".ckpt.pt.tmp"
    unrelated.write_bytes(b"not ours")
    removed = remove_stale_temps(tmp_path)
    assert sorted(f for f, _ in removed) == left
    assert sorted(size for _, size in removed) == [3000, 5000]
    assert sorted(tmp_path.iterdir()) == sorted([other_host, unrelated])
    assert say_removed(removed[:1], "a thing")[0].startswith(f"removed {removed[0][0]} (0.0 MiB), a thing that a killed")
    assert remove_stale_temps(tmp_path / "missing") == []


def test_a_second_interrupt_inside_the_clean_up_still_removes_the_temporary_file(tmp_path, monkeypatch):
    """A Ctrl-C pressed again (or the test's 10 ms timer in test_interrupt) can land inside the removal of a failed
    write's temporary file; the half-written file was left (seen once in CI)."""
    import pathlib

    real_unlink, calls = pathlib.Path.unlink, []

    def interrupted_once(self, missing_ok=False):
        calls.append(self)
        if len(calls) == 1:
            raise KeyboardInterrupt  # before the file system call
        return real_unlink(self, missing_ok=missing_ok)

    def cut_short(f):
        f.write(b"half")
        monkeypatch.setattr(pathlib.Path, "unlink", interrupted_once)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "ckpt.pt", cut_short)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []
