"""The one error type the CLI reports as a single line (`speedrun: error: ...`, exit code 2).

Every module raises a subclass of SpeedrunError for a problem the user can fix (bad recipe, corrupt shard,
missing file, no network, no GPU, ...); anything else is a bug and keeps its traceback. SIGTERM ends any command as
Ctrl-C does (Terminated), so that what it was writing is cleaned up and the exit code says why.
"""

import contextlib
import signal
import threading


class SpeedrunError(Exception):
    """A user-facing problem. Its message is one line and names the file, field or setting at fault."""


class TrainingError(SpeedrunError, RuntimeError):
    """The run cannot go on (non-finite loss, no GPU for a GPU-only recipe, ...). One-line message."""


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a run's timed loop (which stops after a step and checkpoints instead): ends the command as
    Ctrl-C does, half-written output removed, a run's log closed as failed, and the CLI exits 143. A
    KeyboardInterrupt, as no library may catch it as an error."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum, frame):
    raise Terminated


def terminate_on_sigterm():
    """SIGTERM raises Terminated from here on (`timeout` and job schedulers send it, for a run most often during the
    long compile of a GPU launch), instead of ending the process with no word, a temporary folder left behind or a
    log with no end line; a run's StopRequest takes SIGTERM over in the timed loop and gives it back after.
    Returns the handler it replaced (None off the main thread, where nothing changes)."""
    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _raise_terminated)
    return None


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM wait until the block ends, then act as they would have (the handlers in place before:
    KeyboardInterrupt, Terminated), so that a block of several steps (moving a set of files into place) is never left
    half done. An ignored SIGINT stays ignored. Only the main thread owns signal handlers: elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])  # the first one, through the handler it would have met
