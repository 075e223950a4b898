"""The one error type the CLI reports as a single line (`speedrun: error: ...`, exit code 2).

Every module raises a subclass of SpeedrunError for a problem the user can fix (bad recipe, corrupt shard,
missing file, no network, no GPU, ...); anything else is a bug and keeps its traceback. SIGTERM ends any command as
Ctrl-C does (Terminated), so that what it was writing is cleaned up and the exit code says why.
"""

import contextlib
import math
import signal
import threading
import time


class SpeedrunError(Exception):
    """A user-facing problem. Its message is one line and names the file, field or setting at fault.

    Under torchrun the CLI names the rank in the line (`speedrun: error: rank 3: ...`), as ranks can fail apart (a
    GPU out of memory, a shard one rank reads); an error every rank raises at once, from a value they all share,
    sets `every_rank`, and rank 0 alone reports it: one line, not one a rank."""

    every_rank = False


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


def set_stop_handlers(on_sigint, on_sigterm) -> dict:
    """Install SIGINT's and SIGTERM's handlers; returns those they replaced, to put back. An ignored SIGINT stays
    ignored: a shell starts a script's background job so, that the terminal's Ctrl-C meant for the script does not
    stop it (SIGTERM still does), during setup, loop and exit alike. Only the main thread can set handlers: elsewhere
    nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig, handler in ((signal.SIGINT, on_sigint), (signal.SIGTERM, on_sigterm)):
        if not (sig == signal.SIGINT and signal.getsignal(sig) is signal.SIG_IGN):
            previous[sig] = signal.signal(sig, handler)
    return previous


class StopRequest:
    """SIGINT / SIGTERM handlers that note the first signal instead of acting on it (the timed loop stops after the
    current step and checkpoints; a run's ending and signals_deferred finish first); a SIGINT more than `grace_s`
    later raises KeyboardInterrupt at once. (Within the grace time it is the same Ctrl-C arriving twice: from the
    terminal and forwarded by torchrun.) The previous handlers come back on exit. Only the main thread can own signal
    handlers: elsewhere this does nothing."""

    def __init__(self, grace_s: float = 2.0):
        self.signum: int | None = None
        self.grace_s = grace_s
        self._first = 0.0
        self._previous: dict = {}

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum, self._first = signum, time.monotonic()
        elif signum == signal.SIGINT and time.monotonic() - self._first > self.grace_s:
            raise KeyboardInterrupt

    def __enter__(self):
        self._previous = set_stop_handlers(self._handle, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM wait until the block ends, then act as they would have (the handlers in place before:
    KeyboardInterrupt, Terminated), so that a block of several steps (moving a set of files into place) is never left
    half done. An ignored SIGINT stays ignored (StopRequest)."""
    with StopRequest(grace_s=math.inf) as deferred:
        yield
    if deferred.signum is not None:
        signal.raise_signal(deferred.signum)  # the first one, through the handler it would have met


@contextlib.contextmanager
def signals_act():
    """Inside a StopRequest, SIGINT and SIGTERM act at once again (KeyboardInterrupt, Terminated) for the block: work
    a signal should cut short (a finished run's sample), entered inside its `try` so that no moment is uncovered. An
    ignored SIGINT stays ignored."""
    previous = set_stop_handlers(signal.default_int_handler, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
