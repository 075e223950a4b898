"""Checkpoints: everything a run needs to continue exactly where it stopped, in one file written atomically.

The model's state_dict (uncompiled), both optimisers', the step, the train stream's position, every RNG, the
recipe, the log's path, the clock and the losses so far; a finished run's final checkpoint may hold the weights
alone. Named `ckpt_<recipe>_<run id>_step<SSSSSS>.pt`, the run id of the run log that wrote it
(`logs/<time>_<recipe>_<run id>.txt`), so that runs sharing a folder never overwrite each other's; `latest` is
the newest in its folder. Rank 0 writes, every rank loads.
"""

import glob
import os
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from speedrun.build import build_model
from speedrun.errors import SpeedrunError
from speedrun.files import write_atomic
from speedrun.plan import make_plan
from speedrun.recipe import Recipe, RecipeError, apply_overrides, load_recipe, recipe_from_dict
from speedrun.words import plural

FORMAT = "speedrun-checkpoint v1"
NAME = re.compile(r"^ckpt_(.+)_step(\d+)\.pt$")
DEFAULT_DIR = "checkpoints"  # where runs write and `latest` looks, unless told otherwise


class CheckpointError(SpeedrunError, ValueError):
    """A checkpoint is missing, unreadable, not a speedrun checkpoint, or does not fit the run. One line."""


@dataclass
class Checkpoint:
    path: Path
    recipe: Recipe
    step: int  # optimiser steps completed
    model: dict
    optimizers: list[dict]  # [adam, muon]
    stream: dict  # StreamPosition fields: shard, offset, passes
    rng: dict
    train_time_ms: float = 0.0
    train_losses: list[float] = field(default_factory=list)  # steps 1..step
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    log_path: str | None = None  # the run's log: absolute (older checkpoints: relative to where the run started)
    # (file name, tokens, fingerprint) of the train stream's files; older checkpoints: (file name, tokens)
    train_files: list[tuple] = field(default_factory=list)
    save_every: int = 0
    keep_last: int = 0  # the run's --keep-last, which a resume keeps as it keeps save_every
    world_size: int = 1

    @property
    def complete(self) -> bool:
        return self.step >= self.recipe.steps


def checkpoint_name(recipe_name: str, run_id: str, step: int) -> str:
    return f"ckpt_{recipe_name}_{run_id}_step{step:06d}.pt"


def earlier_parts(resumed: Path, folder: Path) -> list[Path]:
    """The checkpoints in `folder` that the run of `resumed` wrote (its file name's recipe and run id), the resumed
    one included, oldest step first: the first part of one run, resumed, which --keep-last counts. None where the
    resumed run saved them elsewhere, or where it has checkpoints past the resumed one: then the resume branches off
    a run that went on (or finished), and that run's files are its own, never dropped."""
    m = re.fullmatch(r"(ckpt_.+_)step(\d{6,})\.pt", Path(resumed).name)
    if m is None or Path(resumed).resolve().parent != Path(folder).resolve():
        return []
    steps = {int(f.name[len(m[1]) + 4:-3]): f for f in Path(folder).glob(f"{glob.escape(m[1])}step*.pt")
             if re.fullmatch(r"\d{6,}", f.name[len(m[1]) + 4:-3])}
    if max(steps, default=0) > int(m[2]):
        return []
    return [steps[k] for k in sorted(steps)]


# --- RNG ---------------------------------------------------------------------------------------------------------
def capture_rng() -> dict:
    """Every RNG a run could draw from, in types that torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return dict(
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos), has_gauss=int(has_gauss),
                   gauss=float(gauss)),
        python=random.getstate(),
    )


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)  # a different GPU count: CUDA streams start afresh (nothing trains on them)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# --- write -------------------------------------------------------------------------------------------------------
def payload(*, model, optimizers, step: int, stream_position, recipe: Recipe, log_path: str | None = None,
            train_time_ms: float = 0.0, train_losses=(), val_losses=(), train_files=(), save_every: int = 0,
            keep_last: int = 0, world_size: int = 1) -> dict:
    """Everything a checkpoint holds, with every tensor copied to CPU memory (a snapshot that later training
    steps cannot change). `model` is the uncompiled module (a compiled wrapper's keys carry `_orig_mod.`).
    `optimizers=()` makes a weights-only checkpoint (a finished run's model, for sampling and evals)."""
    base = getattr(model, "_orig_mod", model)
    return dict(
        format=FORMAT,
        recipe=recipe.to_dict(),
        step=int(step),
        model=_to_cpu(base.state_dict()),
        optimizers=[_to_cpu(o.state_dict()) for o in optimizers],
        stream=dict(shard=int(stream_position.shard), offset=int(stream_position.offset),
                    passes=int(stream_position.passes)),
        rng=capture_rng(),
        train_time_ms=float(train_time_ms),
        train_losses=[float(x) for x in train_losses],
        val_losses=[(int(s), float(v)) for s, v in val_losses],
        log_path=None if log_path is None else os.path.abspath(log_path),  # a resume may start in another folder
        train_files=[(str(n), int(t), *map(str, fp)) for n, t, *fp in train_files],
        save_every=int(save_every),
        keep_last=int(keep_last),
        world_size=int(world_size),
        torch_version=str(torch.__version__),
    )


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def save(path: str | os.PathLike, **state) -> Path:
    """Snapshot the live training state (see `payload`) and write it atomically to `path`."""
    return write(path, payload(**state))


def write(path: str | os.PathLike, snapshot: dict) -> Path:
    """Write a checkpoint atomically and durably: a crash leaves the previous file (or none), never a truncated one."""
    def save(f):
        try:
            torch.save(snapshot, f)
        except RuntimeError as e:
            # a Ctrl-C's KeyboardInterrupt inside torch.save makes its zip writer fail on the way out ("unexpected
            # pos"): the signal is what happened, so that the run stops as interrupted (130), not with a traceback
            if isinstance(e.__context__, KeyboardInterrupt):
                raise e.__context__ from None
            raise
    return write_atomic(path, save, durable=True)


# --- read --------------------------------------------------------------------------------------------------------
def load(path: str | os.PathLike, map_location="cpu") -> Checkpoint:
    """Read and check a checkpoint (tensors on `map_location`); CheckpointError names the file on any problem."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (use --resume latest with "
                              f"--checkpoint-dir {path})")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is another kind of file
        raise CheckpointError(f"{path}: not a readable checkpoint (not a torch.save archive: truncated, or "
                              f"another kind of file)")
    # torch.load does not check the archive's CRCs: bytes damaged inside a tensor would load as wrong numbers (NaN in
    # an optimiser's state, say) and train on silently
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        damaged = f"the archive ({type(e).__name__})"
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint ({damaged} fails its checksum); use an earlier one")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a damaged archive or a foreign pickle; torch's own advice (weights_only) would mislead
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        why = next((l for l in lines if l.startswith("WeightsUnpickler error")), type(e).__name__)
        why = why.split(" Please ")[0].split(" Check the ")[0][:200]  # the finding, without torch's advice
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, or not written by speedrun: {why})") from None
    if not isinstance(data, dict) or "format" not in data:
        raise CheckpointError(f"{path}: not a speedrun checkpoint (no format marker)")
    if data["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {data['format']!r} is not {FORMAT!r} (written by another "
                              f"version of speedrun)")
    try:
        recipe = recipe_from_dict(data["recipe"])
        return Checkpoint(
            path=path, recipe=recipe, step=int(data["step"]), model=data["model"], optimizers=list(data["optimizers"]),
            stream=dict(data["stream"]), rng=data["rng"], train_time_ms=float(data["train_time_ms"]),
            train_losses=list(data["train_losses"]), val_losses=[tuple(x) for x in data["val_losses"]],
            log_path=data["log_path"], train_files=[tuple(x) for x in data.get("train_files", [])],
            save_every=int(data.get("save_every", 0)), keep_last=int(data.get("keep_last", 0)),
            world_size=int(data.get("world_size", 1)),
        )
    except RecipeError as e:
        raise CheckpointError(f"{path}: its recipe does not fit this version of speedrun: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: incomplete checkpoint ({type(e).__name__}: {e})") from None


def resolve(spec: str | os.PathLike, checkpoint_dir: str | os.PathLike | None = None) -> Path:
    """`latest` -> the newest checkpoint in `checkpoint_dir` (default `checkpoints`; by mtime, ties: the higher
    step); a folder -> the most recently written one in it; anything else is a path."""
    latest = str(spec) == "latest"
    folder = Path((checkpoint_dir or DEFAULT_DIR) if latest else spec)
    if not (latest or folder.is_dir()):
        return folder
    if latest and not folder.exists():
        raise CheckpointError(f"latest: no {folder}/ folder here, so no checkpoint to take (runs save theirs "
                              f"there); train first, or give a checkpoint file or folder")
    if latest and not folder.is_dir():  # `--checkpoint-dir ckpt.pt --resume latest`
        raise CheckpointError(f"latest: {folder} is a file, not a checkpoint folder; give the file itself "
                              f"(--resume {folder}), or --checkpoint-dir its folder")
    found = [(p.stat().st_mtime_ns, int(m[2]), p) for p in (folder.iterdir() if folder.is_dir() else [])
             if (m := NAME.match(p.name)) and p.is_file()]
    if not found:
        raise CheckpointError(f"{folder}: no checkpoints (ckpt_*_step*.pt) in this folder; give a checkpoint path" +
                              (" (or, for --resume, --checkpoint-dir)" if latest else ""))
    return max(found, key=lambda t: (t[0], t[1]))[2]


def checkpoint_folder(checkpoint_dir: str | os.PathLike | None, resumed: Checkpoint | None) -> Path:
    """Where a run writes its checkpoints: --checkpoint-dir, else the folder of the checkpoint it resumes (a resumed
    run's checkpoints stay beside the first part's), else `checkpoints`."""
    if checkpoint_dir:
        return Path(checkpoint_dir)
    return resumed.path.parent if resumed is not None else Path(DEFAULT_DIR)


def log_folder(log_dir: str | os.PathLike | None, resumed: Checkpoint | None) -> Path:
    """Where a run writes its log: --log-dir, else for a resumed run the folder of the first part's log (so `speedrun
    stats` there sees every part, as checkpoint_folder keeps the checkpoints together) wherever the resume starts, or
    where that log is not found (a checkpoint folder copied to another machine) `logs` beside the checkpoint's
    folder, the default layout (checkpoints/ and logs/ side by side); else `logs`."""
    if log_dir:
        return Path(log_dir)
    if resumed is None or not resumed.log_path:
        return Path("logs")
    found = first_log(resumed)
    return found.parent if found is not None else Path(resumed.path).resolve().parent.parent / "logs"


def first_log(resumed: Checkpoint) -> Path | None:
    """The resumed run's first part's log where this machine has it, else None: first a file of its name in `logs`
    beside the checkpoint's folder (the default layout, and a run folder copied whole), then the recorded path.
    Checkpoints record it absolute; an older one's path is relative to the folder its run started in, unknown here:
    tried from here, then from the checkpoint's folder and each above it (where that run's checkpoints were written,
    usually). The name holds the run's time and id, so a file of that name is that log."""
    if not resumed.log_path:
        return None
    recorded = Path(resumed.log_path)
    folder = Path(resumed.path).resolve().parent
    # first the log beside the checkpoint's folder: a run folder copied whole to branch it continues in the copy, not
    # in the folder it was copied from (whose log the checkpoint recorded)
    tries = [folder.parent / "logs" / recorded.name]
    tries += [recorded] if recorded.is_absolute() else [recorded, *(p / recorded for p in (folder, *folder.parents))]
    return next((p for p in tries if p.is_file()), None)


def recipe_differences(a: Recipe, b: Recipe) -> list[str]:
    """`field (checkpoint A, given B)` for every field where recipe b differs from the checkpoint's recipe a."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k} (checkpoint {da[k]!r}, given {db.get(k)!r})" for k in da if da[k] != db.get(k)]


def load_for_resume(spec: str, checkpoint_dir: str | None = None, recipe_name: str | None = None,
                    overrides=None) -> Checkpoint:
    """The checkpoint `--resume PATH|latest` names, checked for resuming. --recipe / --set may be repeated (the
    same command line with --resume added) but must give exactly the checkpoint's recipe: a changed field (even
    `steps`, which moves the cool-down and the window ramp) would be another run. --set alone applies to the
    checkpoint's recipe; with --recipe, to that recipe file."""
    ckpt = load(resolve(spec, checkpoint_dir))
    if ckpt.complete:
        raise CheckpointError(f"{ckpt.path}: the run is complete (step {ckpt.step} of {ckpt.recipe.steps}); nothing "
                              f"to resume (sample or evaluate it, or start a new run)")
    if recipe_name is not None:
        given = load_recipe(recipe_name, overrides)
        if given.name != ckpt.recipe.name:  # one line, not every field of two different recipes
            raise CheckpointError(f"{ckpt.path}: the checkpoint is a run of recipe {ckpt.recipe.name!r}, not "
                                  f"{given.name!r}; --resume continues the checkpoint's own recipe: drop --recipe")
    elif overrides:
        values = ckpt.recipe.to_dict()
        apply_overrides(values, overrides)
        given = Recipe(**values)
    else:
        return ckpt
    diff = recipe_differences(ckpt.recipe, given)
    if diff:
        raise CheckpointError(f"{ckpt.path}: --resume continues the checkpoint's recipe; --recipe/--set change "
                              f"{', '.join(diff)}; drop them to resume")
    return ckpt


def load_model(checkpoint: str | os.PathLike | Checkpoint, device: str | None = None):
    """(model in eval mode on `device`, plan, checkpoint) for sampling and evals: the training device plan's
    model (bf16 embeddings and FlexAttention on a GPU), with the checkpoint's weights."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load(resolve(checkpoint))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError("--device cuda: no CUDA GPU is visible; use --device cpu")
    plan = make_plan(ckpt.recipe, force_device="cuda" if device.startswith("cuda") else "cpu")
    plan.world_size, plan.rank = 1, 0  # evals run in one process
    model = build_model(ckpt.recipe, plan)
    load_weights(model, ckpt)
    model.eval()
    return model, plan, ckpt


def check_weights_fit(model, ckpt: Checkpoint) -> None:
    """CheckpointError naming what differs, unless the checkpoint's tensors are the model's by name and shape: a
    checkpoint whose recipe was edited by hand is refused here, before a compile and a warm-up are spent on it."""
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ckpt.model.items()}
    differ = [f"{k}: {_shape(theirs[k])} in the checkpoint, {_shape(mine[k])} in its recipe's model"
              for k in mine if k in theirs and mine[k] != theirs[k]]
    missing = [k for k in mine if k not in theirs]
    extra = [k for k in theirs if k not in mine]
    parts = []
    if differ:
        parts.append(f"{plural(len(differ), 'tensor')} of another shape (e.g. {differ[0]})")
    if missing:
        parts.append(f"{plural(len(missing), 'tensor')} of its recipe's model missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{plural(len(extra), 'tensor')} its recipe's model has no place for (e.g. {extra[0]})")
    if parts:
        raise CheckpointError(f"{ckpt.path}: the weights do not fit the checkpoint's recipe (edited?): "
                              + "; ".join(parts))


def _shape(shape: tuple) -> str:
    return "x".join(map(str, shape)) or "scalar"


def load_weights(model, ckpt: Checkpoint) -> None:
    check_weights_fit(model, ckpt)
    model.load_state_dict(ckpt.model)
