"""Writing files safely: output folders checked before any work, and every file written beside its final name and
then renamed, so that neither a crash nor a reader ever sees a half-written file under that name."""

import contextlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from speedrun.errors import SpeedrunError


def check_writable_folder(path, what: str, error: type[SpeedrunError] = SpeedrunError, shown=None) -> list[Path]:
    """`error` (one line: "WHAT SHOWN: why") unless `path` is, or can be made, a folder we can write in; checked up
    front, leaving nothing (a probe file is made and removed). Returns the folders that would have to be made, top first. `shown`: the name the user
    gave, when `path` is the folder of that file (default `path`)."""
    path = Path(path)
    shown = path if shown is None else Path(shown)
    missing, existing = [], path
    while not existing.exists() and existing != existing.parent:  # also past a file: "FILE/sub" does not exist
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        why = "exists and is not a folder" if existing == shown else f"{existing} is a file, not a folder"
        raise error(f"{what} {shown}: {why}")
    # a real file, not os.access: that lets root write anywhere (/proc included) and has no word for a read-only mount
    probe = temp_path(existing / "probe")
    try:
        open(probe, "xb").close()
        probe.unlink()
    except PermissionError:
        raise error(f"{what} {shown}: no permission to write in {existing}") from None
    except OSError as e:
        raise error(f"{what} {shown}: cannot create a file in {existing} ({e.strerror or e})") from None
    return missing[::-1]


def glob_files(pattern: Path) -> list[Path] | None:
    """The files a glob (`*`, `?`, `[...]`; relative or absolute) matches, sorted, links to nothing included (the
    reader names them: dropped, they would go unseen); None when `pattern` is no glob."""
    if not any(ch in str(pattern) for ch in "*?["):
        return None
    return sorted(f for f in Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor)))
                  if f.is_file() or broken_link(f))


def broken_link(path: Path) -> bool:
    """A symlink to nothing (or to itself, round a loop)."""
    return path.is_symlink() and not path.exists()


def folder_files(folder: Path, broken: list[Path] | None = None) -> list[Path]:
    """The files under `folder`, recursively, sorted by path; hidden ones (a name starting with ".") and those in
    hidden folders left out. Symlinked folders are followed, each real folder once: a link back to a folder above
    would loop, and one reached twice would give its files twice. Links to nothing go to `broken` when given.
    Raises OSError where a folder cannot be listed (no permission): skipped, its files would go unseen."""
    files: list[Path] = []
    seen: set[Path] = set()

    def walk(d: Path) -> None:
        if (real := d.resolve()) in seen:
            return
        seen.add(real)
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            path = d / entry.name
            if entry.name.startswith("."):
                continue
            if entry.is_dir():  # a symlinked folder too
                walk(path)
            elif entry.is_file():
                files.append(path)
            elif broken is not None and broken_link(path):
                broken.append(path)

    walk(Path(folder))
    return sorted(files)


def temp_path(path: Path) -> Path:
    # a named file, not mkstemp: mkstemp's 0600 mode would survive the rename. The writer's pid and host are in the
    # name so that a later run can tell a killed writer's leftover from a live writer's file (remove_stale_temps)
    return path.parent / f".{path.name}.{os.getpid()}@{_host()}.{uuid.uuid4().hex[:8]}.tmp"


def temp_folder(folder: Path, name: str) -> Path:
    """A new hidden folder in `folder` for work renamed out of it when done, named as temp_path names files."""
    return Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}@{_host()}.", suffix=".tmp", dir=folder))


# temp_path's files and temp_folder's folders (mkdtemp's 8 characters: lower-case letters, digits, "_")
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[^/]*)\.[0-9a-z_]{8}\.tmp$")


def _host() -> str:
    return socket.gethostname().replace("/", "_") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's live process
        return True
    return True


def remove_stale_temps(folder) -> list[tuple[Path, int]]:
    """Remove what a writer killed mid-write (SIGKILL, out of memory, a power cut) left in `folder`: the files of
    temp_path and folders of temp_folder made on this host by a process that is gone. A live writer's, or another
    host's (a shared file system), are left alone. Returns what was removed, each with its size in bytes."""
    removed = []
    with contextlib.suppress(OSError):
        for f in Path(folder).iterdir():
            m = _TEMP_NAME.match(f.name)
            if not (m and m["host"] == _host() and not _alive(int(m["pid"]))):
                continue
            with contextlib.suppress(OSError):
                if f.is_dir() and not f.is_symlink():
                    size = sum(g.stat().st_size for g in f.rglob("*") if g.is_file())
                    shutil.rmtree(f)
                else:
                    size = f.stat().st_size
                    f.unlink()
                removed.append((f, size))
    return sorted(removed)


def say_removed(removed: list[tuple[Path, int]], what: str) -> list[str]:
    """A line for each leftover remove_stale_temps removed: '... (N MiB), WHAT that a killed run left half-written'."""
    return [f"removed {f} ({size / 2**20:,.1f} MiB), {what} that a killed run left half-written" for f, size in removed]


def write_atomic(path, write: Callable[[BinaryIO], object], durable: bool = False) -> Path:
    """write(file) to a temporary name beside `path`, then rename it over `path`. durable: fsync the file and the
    rename (checkpoints and shards, which a power cut must not leave half on disk)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        _remove_on_the_way_out(tmp)
        failed = _os_error_in(e)
        if failed is not None and failed.filename in (None, str(tmp)):  # said of `path`, not the temporary name
            raise OSError(failed.errno, failed.strerror or str(failed), str(path)) from e
        if failed is not None and failed is not e:  # of another file (a program the writer ran): as it was, unwrapped
            raise failed from e
        raise
    if durable:
        with contextlib.suppress(OSError):
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return path


def _remove_on_the_way_out(tmp: Path) -> None:
    """Remove a failed write's temporary file, even where another signal's exception lands inside the removal (Ctrl-C
    pressed again, a timer): it would go up in place of the first and leave the half-written file. The first exception
    is the one that goes on up; later ones are dropped here, a few tries at most."""
    for _ in range(10):
        try:
            tmp.unlink(missing_ok=True)
            return
        except OSError:
            return
        except BaseException:  # a signal handler's raise mid-way: try again
            continue


def _os_error_in(e: BaseException) -> OSError | None:
    """The file system's refusal behind `e` (itself, or what it was raised from: torch.save turns a full disk into a
    RuntimeError), or None."""
    while e is not None:
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
    return None


def each_file_once(files, repeated: list[Path] | None = None) -> list[Path]:
    """`files` with each file kept once, at its first mention: a file named twice, or named and inside a named folder,
    must not count (or be read) twice. Later mentions go to `repeated` when given."""
    unique: dict[Path, Path] = {}
    for f in map(Path, files):
        if f.resolve() in unique:
            if repeated is not None:
                repeated.append(f)
        else:
            unique[f.resolve()] = f
    return list(unique.values())
