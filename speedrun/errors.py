"""The one error type the CLI reports as a single line (`speedrun: error: ...`, exit code 2).

Every module raises a subclass of SpeedrunError for a problem the user can fix (bad recipe, corrupt shard,
missing file, no network, no GPU, ...); anything else is a bug and keeps its traceback.
"""


class SpeedrunError(Exception):
    """A user-facing problem. Its message is one line and names the file, field or setting at fault."""


class TrainingError(SpeedrunError, RuntimeError):
    """The run cannot go on (non-finite loss, no GPU for a GPU-only recipe, ...). One-line message."""
