"""Optional run metrics for Weights & Biases and TensorBoard (extras `speedrun[wandb]`, `speedrun[tensorboard]`).

Both packages are imported only when a sink is asked for: a plain install neither needs nor loads them.
"""

import importlib
import importlib.util
import json
import os

from speedrun.errors import SpeedrunError
from speedrun.files import check_writable_folder


def _require(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:  # torch.utils.tensorboard raises a plain ImportError when tensorboard is missing
        raise SpeedrunError(f"--{extra} needs the {extra} package: pip install 'speedrun[{extra}]'") from e


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def readiness(wandb_project: str | None, tensorboard_dir: str | None) -> tuple[bool, str | None]:
    """A dry run's metrics line: whether `open_metrics` would find its packages (looked up, not imported). wandb's
    login is not checked: that needs the network, and happens when the run starts."""
    asked = ([("wandb", f"wandb project {wandb_project} (its login is checked when the run starts)")] if wandb_project
             else []) + ([("tensorboard", f"TensorBoard under {tensorboard_dir}")] if tensorboard_dir else [])
    missing = [f"--{extra} needs the {extra} package: pip install 'speedrun[{extra}]'"
               for extra, _ in asked if not _installed(extra)]
    if missing:
        return False, f"metrics: NOT READY: {'; '.join(missing)}"
    return True, f"metrics: ready: {', '.join(what for _, what in asked)}" if asked else None


class Metrics:
    """Sends a run's numbers to zero or more sinks; every method is a no-op without sinks. TensorBoard's folder is
    made at the first number, so that `start` can name it as the run's log is named first."""

    def __init__(self, wandb_run=None, tb_writer=None, open_tb=None, name: str = ""):
        self._run, self._writer, self._open_tb, self._name = wandb_run, tb_writer, open_tb, name

    def start(self, run_name: str) -> None:
        """Name the run as its log (`<time>_<recipe>_<run id>`): the TensorBoard folder, and the wandb run."""
        self._name = run_name
        if self._run is not None:
            self._run.name = run_name

    def _log(self, step: int, scalars: dict[str, float]) -> None:
        if self._writer is None and self._open_tb is not None:
            self._writer, self._open_tb = self._open_tb(self._name), None
        if self._run is not None:
            self._run.log(scalars, step=step)  # wandb drops (with a warning) a step lower than one already logged
        if self._writer is not None:
            for tag, value in scalars.items():
                self._writer.add_scalar(tag, value, global_step=step)

    def step(self, step: int, train_loss: float, tokens_per_s: float, step_ms: float) -> None:
        self._log(step, {"train/loss": train_loss, "train/tokens_per_s": tokens_per_s, "train/step_ms": step_ms})

    def val(self, step: int, val_loss: float, train_time_ms: float) -> None:
        self._log(step, {"val/loss": val_loss, "val/train_time_s": train_time_ms / 1000})

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # flushes first
            self._writer = None
        if self._run is not None:
            self._run.finish()
            self._run = None


def open_metrics(run_name: str, config: dict, wandb_project: str | None = None,
                 tensorboard_dir: str | None = None) -> Metrics:
    """Metrics for the sinks asked for; a missing package or a TensorBoard folder that cannot be written stops here,
    before any training work."""
    wandb = _require("wandb", "wandb") if wandb_project else None
    tb = _require("torch.utils.tensorboard", "tensorboard") if tensorboard_dir else None
    if tensorboard_dir:
        check_writable_folder(tensorboard_dir, "--tensorboard")
    open_tb = None
    if tb is not None:
        def open_tb(name: str):
            writer = tb.SummaryWriter(log_dir=os.path.join(tensorboard_dir, name))
            # a fenced block, so that TensorBoard's markdown keeps the JSON's lines
            writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```")
            return writer
    run = None
    if wandb is not None:
        try:  # WANDB_MODE etc. come from the user's environment (offline needs no network)
            run = wandb.init(project=wandb_project, name=run_name, config=config)
        except wandb.errors.Error as e:  # no API key, bad project, ...: fixable by the user
            raise SpeedrunError(f"--wandb: {' '.join(str(e).split())} (or WANDB_MODE=offline: a local run, synced "
                                f"later with `wandb sync`)") from e
    return Metrics(run, open_tb=open_tb, name=run_name)
