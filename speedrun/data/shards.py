"""The speedrun token shard format (same as llm.c / modded-nanogpt FineWeb shards).

A shard is 256 little-endian int32 header values -- [0] magic 20240520, [1] version 1, [2] token count, the
rest 0 -- followed by that many little-endian uint16 tokens. Everything in speedrun that touches a `.bin`
file goes through `read_shard` / `write_shard` / `shard_header`. `read_shard` also checks that every token id
is below the vocabulary size, so a bad id fails at open with the file's name, not later inside the model.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from speedrun.data.tokenizer import VOCAB_SIZE
from speedrun.errors import SpeedrunError
from speedrun.files import broken_link, folder_files, glob_files, write_atomic

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
MAX_TOKEN = np.iinfo(np.uint16).max


class ShardError(SpeedrunError, ValueError):
    """A shard file is missing, truncated or not in the speedrun format. The message names the file."""


# a compressed shard read as one would give only "bad magic": say what it is and how to unpack it
COMPRESSED_MAGIC = {"xz": (b"\xfd7zXZ\x00", "xz -dk"), "gzip": (b"\x1f\x8b", "gunzip -k"),
                    "zstd": (b"\x28\xb5\x2f\xfd", "zstd -d")}


def shard_header(path: str | os.PathLike) -> int:
    """Validate the header and size of the shard at `path`; return its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        if broken_link(path):
            raise ShardError(f"{path}: a broken symlink (to {os.readlink(path)}), not a shard file") from None
        raise ShardError(f"{path}: no such shard file") from None
    if path.is_dir():
        raise ShardError(f"{path}: is a directory, not a shard file")
    with open(path, "rb") as f:
        lead = f.read(6)
    for kind, (magic, command) in COMPRESSED_MAGIC.items():
        if lead.startswith(magic):
            raise ShardError(f"{path}: {kind}-compressed; decompress it first ({command} {path})")
    if size < HEADER_BYTES:
        raise ShardError(f"{path}: {size} bytes is shorter than the {HEADER_BYTES}-byte shard header")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != MAGIC:
        raise ShardError(f"{path}: bad magic {int(header[0])} (expected {MAGIC}); not a speedrun token shard")
    if header[1] != VERSION:
        raise ShardError(f"{path}: unsupported shard version {int(header[1])} (expected {VERSION})")
    count = int(header[2])
    if count < 0:
        raise ShardError(f"{path}: negative token count {count} in header")
    expected = HEADER_BYTES + count * TOKEN_DTYPE.itemsize
    if size != expected:
        what = "truncated" if size < expected else "has trailing bytes"
        raise ShardError(f"{path}: {what}: header declares {count:,} tokens ({expected:,} bytes) but the file has "
                         f"{size:,} bytes")
    return count


def read_shard(path: str | os.PathLike, *, vocab_size: int = VOCAB_SIZE) -> np.ndarray:
    """Memory-map the tokens of a validated shard (read-only uint16 array; no copy is made).
    Raises ShardError for a bad header, size or token id >= `vocab_size` (MAX_TOKEN + 1 accepts any uint16)."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    count = shard_header(path)
    if count == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    tokens = np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(count,))
    # one max over the memmap (about 10 ms for 100M tokens from the page cache); the position only when one is bad
    if int(tokens.max()) >= vocab_size:
        pos = int(np.argmax(tokens >= vocab_size))
        raise ShardError(f"{path}: token id {int(tokens[pos])} at position {pos:,} is >= the vocabulary size "
                         f"{vocab_size}; not a shard of this tokenizer, a corrupt one, or a vocab_size too small "
                         f"for it")
    return tokens


def write_shard(path: str | os.PathLike, tokens) -> Path:
    """Write `tokens` as a shard at `path` atomically (a temp file in the same folder, then a rename): a crash or
    an error leaves either the old file or no file, never a half-written shard."""
    path = Path(path)
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > MAX_TOKEN):
        raise ValueError(f"token ids must lie in [0, {MAX_TOKEN}] to fit uint16")
    header = np.array([MAGIC, VERSION, arr.size] + [0] * (HEADER_INTS - 3), dtype="<i4")
    return write_atomic(path, lambda f: f.write(header.tobytes() + arr.astype(TOKEN_DTYPE, copy=False).tobytes()),
                        durable=True)


def shard_fingerprint(path: str | os.PathLike, edge_bytes: int = 1 << 16) -> str:
    """12 hex digits of SHA-256 over a shard's size, header and first and last `edge_bytes` of tokens: tells two
    tokenizations of a corpus apart by reading 128 KiB, not the whole shard (a run's launch would pay for that); an
    edit in the middle of a larger shard, keeping its size, goes unseen."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest.update(size.to_bytes(8, "little") + f.read(HEADER_BYTES + edge_bytes))
        f.seek(max(HEADER_BYTES + edge_bytes, size - edge_bytes))
        digest.update(f.read())
    return digest.hexdigest()[:12]


def resolve_shards(pattern: str | os.PathLike | list) -> list[Path]:
    """Expand a file, a folder (its `*.bin`), a glob, or a list of those into sorted shard paths.
    Raises ShardError naming the pattern when nothing matches, so a typo never trains on nothing."""
    if isinstance(pattern, (list, tuple)):
        out = [f for p in pattern for f in resolve_shards(p)]
        if not out:
            raise ShardError("empty list of shard files")
        return out
    p = Path(os.path.expanduser(str(pattern)))
    if p.is_dir():
        files = sorted(p.glob("*.bin"))
    elif p.exists():  # before the glob: a file named with [ ] is that file, as a resolved list passed again
        files = [p]
    elif (matched := glob_files(p)) is not None:
        files = matched
    else:
        raise ShardError(f"{pattern}: no such file or folder")
    if not files and p.is_dir() and (below := _shards_below(p)):
        # a folder means its own *.bin (training's meaning too): shards one level down are not "none"
        raise ShardError(f"{pattern}: no shard files in the folder ({len(below)} in its subfolders: name one, e.g. "
                         f"{below[0].parent})")
    if not files:
        # `--set train_files=[a.bin,b.bin]` reaches here as a glob of one-character classes
        looks_like_list = str(pattern).startswith("[") and str(pattern).endswith("]")
        raise ShardError(f"{pattern}: matches no shard files" + ("; shards are named by one file, folder or glob (a "
                         "folder or a glob for several), not a list" if looks_like_list else ""))
    return files


def _shards_below(folder: Path) -> list[Path]:
    try:
        return [f for f in folder_files(folder) if f.suffix == ".bin"]
    except OSError:  # a subfolder we may not list: the plain "matches no shard files"
        return []
