"""A run's data, checked before any work from the recipe and the checkpoint it resumes.

The files are there (missing FineWeb shards say how many to download), train and val are apart, every header and
token id is valid, the val files hold the positions scored, the train files hold the run's steps, a sampled head
has rows for every target of its steps, and a resumed run reads the files it trained on. `speedrun train --nproc N`
runs this before torchrun starts, so bad data is one error line rather than one per rank under torchrun's report;
every rank runs it again.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from speedrun.checkpoint import Checkpoint, CheckpointError
from speedrun.data.demo import ROLE_PATTERN, data_files, name_glob, one_name, role_shards
from speedrun.data.fineweb import download_hint
from speedrun.data.shards import ShardError, shard_fingerprint, shard_header
from speedrun.data.stream import BatchStream, StreamPosition, check_val_size
from speedrun.model.sampled_head import rows_at, rows_needed
from speedrun.recipe import Recipe, RecipeError


@dataclass
class RunData:
    train_files: list[Path]
    val_files: list[Path]
    position: StreamPosition | None  # where a resumed run's train stream stands; None: from the start
    file_list: list[tuple[str, int]]  # (name, tokens) of each train file
    stream: BatchStream  # this rank's train stream, at `position`: the one scan of every train token id builds it
    fingerprints: list[str]  # each train file's shard_fingerprint, in file_list's order

    @property
    def checkpoint_files(self) -> list[tuple[str, int, str]]:
        """What a checkpoint records of the train files, for a resume's check: (name, tokens, fingerprint) each."""
        return [(name, tokens, fp) for (name, tokens), fp in zip(self.file_list, self.fingerprints)]

    def describe(self) -> str:
        """The run log's `data` section: each train and val file's name, tokens and fingerprint, so that runs on other
        data (another tokenization, another val split) are told apart whatever the files' paths."""
        return "\n".join([*(f"train: {name} {tokens} tokens {fp}" for name, tokens, fp in self.checkpoint_files),
                          *(f"val: {f.name} {shard_header(f)} tokens {shard_fingerprint(f)}" for f in self.val_files)])


def check_run_data(r: Recipe, ckpt: Checkpoint | None = None, world_size: int = 1, rank: int = 0,
                   device: str | torch.device = "cpu") -> RunData:
    try:
        train_files, val_files = data_files(r.train_files, "train"), data_files(r.val_files, "val")
    except ShardError as e:
        relative = [p for p in (r.train_files, r.val_files) if p != "demo" and not os.path.isabs(os.path.expanduser(p))]
        resumed = (f" (the checkpoint's recipe names {relative[0]!r}, relative to the folder the run started in; "
                   f"this is {os.getcwd()}: resume from there)") if ckpt is not None and relative else ""
        hint = resumed + download_hint(r.train_files, r.steps, r.batch_tokens)
        # a recipe file's data paths are read from here, not from the file's folder (as its base is): say where
        missing = [p for p in relative if str(e).startswith(f"{p}: ") and not Path(os.path.expanduser(p)).exists()]
        if not hint and missing:
            hint = f" (a relative path is read from the folder speedrun runs in, {os.getcwd()})"
        raise ShardError(f"{e}{hint}") from None
    shared = sorted({f.resolve() for f in train_files} & {f.resolve() for f in val_files})
    if shared:
        raise RecipeError(f"train_files and val_files share {shared[0]}" + (f" and {len(shared) - 1} more" if
                          len(shared) > 1 else "") + ": validation would score tokens the model trained on")
    check_val_size(val_files, r.val_tokens, r.val_seq_len, world_size, r.vocab_size)
    # the fingerprint (size, header, first and last 64 KiB) tells a file rewritten in place under the same name and
    # length from the one a checkpoint's run trained on, reading 128 KiB of it, not all of it
    file_list = [(f.name, shard_header(f)) for f in train_files]
    fingerprints = [shard_fingerprint(f) for f in train_files]
    position = None
    if ckpt is not None:
        _check_same_train_files(ckpt, file_list, fingerprints)
        position = StreamPosition(**ckpt.stream)
    # the stream reads every train header and token id; the steps it holds are the same for every rank
    stream = BatchStream(train_files, r.batch_tokens, r.seq_len, rank, world_size, loop=r.train_loop,
                         device=device, position=position, vocab_size=r.vocab_size)
    check_train_length(stream, r, ckpt.step if ckpt is not None else 0)
    check_sampled_head_rows(stream, r, ckpt.step if ckpt is not None else 0)
    return RunData(train_files, val_files, position, file_list, stream, fingerprints)


def check_train_length(stream: BatchStream, r: Recipe, start: int) -> None:
    """Train files too short for the run stop it now, not at the step where they run out."""
    left = stream.steps_left()
    if left is not None and left < r.steps - start:
        files = stream.files[0] if len(stream.files) == 1 else f"{stream.files[0].parent} ({len(stream.files)} shards)"
        raise ShardError(f"{files}: the train files hold {left:,} step{'' if left == 1 else 's'} of {r.batch_tokens:,} tokens"
                         f"{' after the checkpoint' if start else ''}, the run needs {r.steps - start:,}; add shards "
                         f"or set train_loop = true{download_hint(r.train_files, r.steps, r.batch_tokens)}")


def check_sampled_head_rows(stream: BatchStream, r: Recipe, start: int) -> None:
    """A sampled head must hold every distinct target of each forward in its steps (`sampled_head.candidate_rows`):
    text with more (random tokens, many scripts, code) stops the run now, not at its first validation."""
    if not r.sampled_head_rows:
        return
    sampled = sum(rows_at(s, r.steps, r.sampled_head_rows, r.sampled_head_end_frac) > 0 for s in range(start, r.steps))
    first = most = None  # (step, rows needed): the first step short of rows, and the step that needs the most
    for ahead, rows in stream.upcoming_targets(sampled):  # every step: the advice must be a count that fits them all
        need = max(rows_needed(row, bool(r.mtp_weights)) for row in rows)
        if need > r.sampled_head_rows and first is None:
            first = (start + ahead, need)
        if most is None or need > most[1]:
            most = (start + ahead, need)
    if first is not None:
        enough = -(-most[1] // 128) * 128
        at_most = "" if most == first else f"; step {most[0]}'s need the most, {most[1]:,}"
        raise RecipeError(f"sampled_head_rows={r.sampled_head_rows} is too few for these train files: step "
                          f"{first[0]}'s targets need {first[1]:,} head rows (every distinct token id){at_most}; set "
                          f"sampled_head_rows to {enough:,} or more (a multiple of 128), or to 0 (the full softmax)")


def _check_same_train_files(ckpt: Checkpoint, file_list: list[tuple[str, int]], fingerprints: list[str]) -> None:
    """The files a checkpoint's run trained on, by name and tokens, and by content where the checkpoint has their
    fingerprints (older ones hold name and tokens only)."""
    if ckpt.train_files and [tuple(f[:2]) for f in ckpt.train_files] != file_list:
        raise CheckpointError(
            f"{ckpt.path}: the train files ({len(file_list)}: {file_list[0][0]}, ...) are not the ones the run "
            f"trained on ({len(ckpt.train_files)}: {ckpt.train_files[0][0]}, ...); the data order would change")
    for (name, tokens, *was), now in zip(ckpt.train_files, fingerprints):
        if was and was[0] != now:
            raise CheckpointError(
                f"{ckpt.path}: train file {name} changed since the checkpoint (the same {tokens:,} tokens, other "
                f"content: fingerprint {now}, the run's {was[0]}); the resume would train on other data: put back "
                f"the file the run trained on, or start a new run")


def data_folder_overrides(folder: str, overrides: list[str]) -> list[str]:
    """`--data DIR`: the recipe's train_files and val_files as the folder's `NAME_train_*.bin` and `NAME_val_*.bin`,
    the names `speedrun data tokenize` and `fineweb` write (one NAME per folder). Refused beside a --set of either, and without both kinds."""
    given = [o.split("=", 1)[0].strip() for o in overrides]
    for key in ("train_files", "val_files"):
        if key in given:
            raise RecipeError(f"--data {folder} and --set {key}: give one or the other")
    path = Path(os.path.expanduser(folder))
    if not path.is_dir():
        raise ShardError(f"--data {folder}: {'not a folder' if path.exists() else 'no such folder'}")
    for role in ("train", "val"):
        if not role_shards(path, role):
            raise ShardError(f"--data {folder}: no {ROLE_PATTERN.format(role=role)} shards there; make them with "
                             f"`speedrun data tokenize FILES --out {folder}` (or `speedrun data fineweb --dir {folder}`)")
    name = one_name(path, folder)
    # that name's files, not ROLE_PATTERN: `*_val_*.bin` would take a name like my_val's train shards as val
    return [f"{role}_files={name_glob(str(path), name, role)}" for role in ("train", "val")]
