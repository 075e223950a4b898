"""The .bin token shard format: round trip, atomic writes, validation errors (token ids >= the vocabulary
included), and shard path resolution."""

from __future__ import annotations

import gzip
import lzma
import os
import re
import stat
import time

import numpy as np
import pytest

from speedrun.data import shards
from speedrun.data.shards import (
    HEADER_BYTES,
    HEADER_INTS,
    MAGIC,
    MAX_TOKEN,
    VERSION,
    ShardError,
    read_shard,
    resolve_shards,
    shard_header,
    write_shard,
)


def _raw_shard(path, tokens, magic=MAGIC, version=VERSION, count=None, extra: bytes = b""):
    """Write a shard by hand (not through write_shard), with any header values."""
    tokens = np.asarray(tokens, dtype="<u2")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = magic, version, len(tokens) if count is None else count
    path.write_bytes(header.tobytes() + tokens.tobytes() + extra)
    return path


ANY_ID = MAX_TOKEN + 1  # vocab_size for format tests that use the whole uint16 range


def _leftovers(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---------------------------------------------------------------------------------------------------------
# format constants (spec: 256 little-endian int32 header values, magic 20240520, version 1, uint16 tokens)

def test_format_constants():
    assert (MAGIC, VERSION, HEADER_INTS, HEADER_BYTES) == (20240520, 1, 256, 1024)
    assert shards.TOKEN_DTYPE == np.dtype("<u2")
    assert shards.MAX_TOKEN == 65535
    assert issubclass(ShardError, ValueError)


# ---------------------------------------------------------------------------------------------------------
# round trip

@pytest.mark.parametrize("make_tokens", [
    lambda: [50256, 15496, 995, 0, 65535, 1],
    lambda: np.arange(0, 65536, 7, dtype=np.int64),
    lambda: np.array([3, 2, 1], dtype=np.uint16),
    lambda: np.array([9, 8], dtype=np.int32),
])
def test_round_trip(tmp_path, make_tokens):
    tokens = make_tokens()
    path = write_shard(tmp_path / "x.bin", tokens)
    assert path == tmp_path / "x.bin"
    expected = np.asarray(tokens).astype(np.int64)
    data = read_shard(path, vocab_size=ANY_ID)
    assert data.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(data.astype(np.int64), expected)
    assert shard_header(path) == len(expected)
    assert path.stat().st_size == HEADER_BYTES + 2 * len(expected)


def test_header_values_and_byte_layout(tmp_path):
    path = write_shard(tmp_path / "x.bin", [1, 258, 65535])
    raw = path.read_bytes()
    header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    assert header[0] == 20240520 and header[1] == 1 and header[2] == 3
    assert not header[3:].any(), "header values 3..255 must be 0"
    # little-endian uint16 tokens right after the header
    assert raw[HEADER_BYTES:] == bytes([1, 0, 2, 1, 255, 255])


def test_read_shard_is_a_read_only_memmap(tmp_path):
    path = write_shard(tmp_path / "x.bin", np.arange(1000))
    data = read_shard(path)
    assert isinstance(data, np.memmap)
    assert not data.flags.writeable
    with pytest.raises(ValueError):
        data[0] = 7
    assert read_shard(path)[0] == 0


def test_empty_shard(tmp_path):
    path = write_shard(tmp_path / "empty.bin", [])
    assert path.stat().st_size == HEADER_BYTES
    assert shard_header(path) == 0
    assert len(read_shard(path)) == 0


def test_write_creates_parent_folders_and_mode_644(tmp_path):
    path = write_shard(tmp_path / "a" / "b" / "x.bin", [1, 2, 3])
    assert read_shard(path).tolist() == [1, 2, 3]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_overwrite_replaces_content(tmp_path):
    path = write_shard(tmp_path / "x.bin", [1, 2, 3])
    write_shard(path, [4, 5])
    assert read_shard(path).tolist() == [4, 5]
    assert _leftovers(tmp_path) == ["x.bin"]


# ---------------------------------------------------------------------------------------------------------
# atomic writes

def test_successful_write_leaves_no_temp_file(tmp_path):
    write_shard(tmp_path / "x.bin", np.arange(5000))
    assert _leftovers(tmp_path) == ["x.bin"]


@pytest.mark.parametrize("where", ["replace", "fsync"])
@pytest.mark.parametrize("exc", [OSError("disk on fire"), KeyboardInterrupt()])
def test_failed_write_leaves_no_file_and_no_temp(tmp_path, monkeypatch, where, exc):
    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(shards.os, where, boom)
    with pytest.raises(type(exc)):
        write_shard(tmp_path / "x.bin", np.arange(5000))
    monkeypatch.undo()
    assert not (tmp_path / "x.bin").exists()
    assert _leftovers(tmp_path) == [], "the temp file must be removed"


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_failed_overwrite_keeps_old_content(tmp_path, monkeypatch, where):
    path = write_shard(tmp_path / "x.bin", [7, 8, 9])

    def boom(*a, **k):
        raise OSError("no space left")

    monkeypatch.setattr(shards.os, where, boom)
    with pytest.raises(OSError, match="no space left"):
        write_shard(path, np.arange(100_000) % 65536)
    monkeypatch.undo()
    assert read_shard(path).tolist() == [7, 8, 9]
    assert _leftovers(tmp_path) == ["x.bin"]


def test_temp_file_is_never_the_target_while_writing(tmp_path, monkeypatch):
    """While data is being written the target name does not exist yet (the data goes to a temp file)."""
    seen = {}
    real_fsync = os.fsync

    def spy(fd):  # the first fsync is the data's (the second, after the rename, makes the rename durable)
        seen.setdefault("target_exists", (tmp_path / "x.bin").exists())
        seen.setdefault("files", _leftovers(tmp_path))
        return real_fsync(fd)

    monkeypatch.setattr(shards.os, "fsync", spy)
    write_shard(tmp_path / "x.bin", [1, 2])
    assert seen["target_exists"] is False
    assert len(seen["files"]) == 1 and seen["files"][0].startswith(".x.bin.") and seen["files"][0].endswith(".tmp")


# ---------------------------------------------------------------------------------------------------------
# token range and shape

@pytest.mark.parametrize("tokens", [[-1, 5], [0, 65536], np.array([70000]), [2**31]])
def test_token_out_of_range_rejected_before_any_file(tmp_path, tokens):
    with pytest.raises(ValueError, match="65535"):
        write_shard(tmp_path / "x.bin", tokens)
    assert _leftovers(tmp_path) == []


def test_two_dimensional_tokens_rejected(tmp_path):
    with pytest.raises(ValueError, match="1-D"):
        write_shard(tmp_path / "x.bin", np.zeros((2, 3), dtype=np.int64))
    assert _leftovers(tmp_path) == []


def test_boundary_tokens_accepted(tmp_path):
    path = write_shard(tmp_path / "x.bin", [0, 65535])
    assert read_shard(path, vocab_size=ANY_ID).tolist() == [0, 65535]


# ---------------------------------------------------------------------------------------------------------
# rejection of bad files: ShardError, one line, naming the file

def _check_error(path, *fragments):
    for fn in (shard_header, read_shard):
        with pytest.raises(ShardError) as info:
            fn(path)
        msg = str(info.value)
        assert str(path) in msg
        assert "\n" not in msg
        for frag in fragments:
            assert frag in msg, (frag, msg)


def test_wrong_magic(tmp_path):
    _check_error(_raw_shard(tmp_path / "m.bin", [1, 2], magic=12345), "bad magic 12345", "20240520")


def test_wrong_version(tmp_path):
    _check_error(_raw_shard(tmp_path / "v.bin", [1, 2], version=2), "version 2")


def test_truncated(tmp_path):
    _check_error(_raw_shard(tmp_path / "t.bin", np.arange(50), count=100), "truncated", "100")


def test_truncated_by_one_byte(tmp_path):
    path = write_shard(tmp_path / "t.bin", np.arange(50))
    path.write_bytes(path.read_bytes()[:-1])
    _check_error(path, "truncated")


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00", b"\x01" * 100])
def test_trailing_bytes(tmp_path, extra):
    _check_error(_raw_shard(tmp_path / "tb.bin", np.arange(50), extra=extra), "trailing bytes")


@pytest.mark.parametrize("size", [0, 10, HEADER_BYTES - 1])
def test_shorter_than_header(tmp_path, size):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\x00" * size)
    _check_error(path, f"{size} bytes", "header")


def test_negative_count(tmp_path):
    _check_error(_raw_shard(tmp_path / "n.bin", [], count=-5), "negative")


def test_missing_file(tmp_path):
    _check_error(tmp_path / "nope.bin", "no such")


def test_directory(tmp_path):
    (tmp_path / "d.bin").mkdir()
    _check_error(tmp_path / "d.bin", "directory")


# ---------------------------------------------------------------------------------------------------------
# resolve_shards

@pytest.fixture
def shard_folder(make_shard, tmp_path):
    folder = tmp_path / "data"
    # written out of name order, to check sorting
    for name in ["train_000002.bin", "train_000000.bin", "train_000001.bin", "val_000000.bin"]:
        make_shard([1, 2, 3], name=name, folder=folder)
    (folder / "notes.txt").write_text("not a shard")
    return folder


def test_resolve_single_file(shard_folder):
    f = shard_folder / "train_000001.bin"
    assert resolve_shards(f) == [f]
    assert resolve_shards(str(f)) == [f]


def test_resolve_a_file_whose_path_holds_glob_characters(make_shard, tmp_path):
    """A run resolves its files, then passes each path on (validation, checks): a folder named `runs [v2]` must
    not turn the file back into a pattern that matches nothing."""
    f = make_shard([1, 2, 3], name="val_000000.bin", folder=tmp_path / "runs [v2]")
    assert resolve_shards(f) == resolve_shards([str(f)]) == [f]


def test_resolve_folder_gives_sorted_bin_files(shard_folder):
    names = [p.name for p in resolve_shards(shard_folder)]
    assert names == ["train_000000.bin", "train_000001.bin", "train_000002.bin", "val_000000.bin"]


def test_resolve_absolute_glob(shard_folder):
    got = resolve_shards(str(shard_folder / "train_*.bin"))
    assert got == [shard_folder / f"train_00000{i}.bin" for i in range(3)]
    assert resolve_shards(str(shard_folder / "train_00000[02].bin")) == [shard_folder / "train_000000.bin",
                                                                        shard_folder / "train_000002.bin"]


def test_resolve_relative_glob(shard_folder, monkeypatch):
    monkeypatch.chdir(shard_folder.parent)
    got = resolve_shards("data/val_*.bin")
    assert [p.resolve() for p in got] == [(shard_folder / "val_000000.bin").resolve()]


def test_resolve_list_keeps_order_of_items(shard_folder):
    got = resolve_shards([str(shard_folder / "val_*.bin"), shard_folder / "train_000000.bin"])
    assert got == [shard_folder / "val_000000.bin", shard_folder / "train_000000.bin"]


def test_resolve_missing_path(tmp_path):
    with pytest.raises(ShardError, match="no such file or folder") as info:
        resolve_shards(tmp_path / "missing.bin")
    assert str(tmp_path / "missing.bin") in str(info.value)


def test_resolve_glob_matching_nothing(shard_folder):
    pattern = str(shard_folder / "fineweb_*.bin")
    with pytest.raises(ShardError, match="matches no shard files") as info:
        resolve_shards(pattern)
    assert pattern in str(info.value)


def test_resolve_a_list_written_as_text(shard_folder, monkeypatch):
    monkeypatch.chdir(shard_folder)
    for text in ("[]", "[train_000000.bin,val_000000.bin]"):
        with pytest.raises(ShardError, match=r"matches no shard files; shards are named by one file, folder or glob"):
            resolve_shards(text)


def test_resolve_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="matches no shard files"):
        resolve_shards(tmp_path / "empty")


def test_resolve_list_with_a_bad_item(shard_folder):
    with pytest.raises(ShardError, match="no such file or folder"):
        resolve_shards([shard_folder / "train_000000.bin", shard_folder / "typo.bin"])


def test_resolve_empty_list_is_an_error():
    try:
        got = resolve_shards([])
    except ShardError:
        return
    raise AssertionError(f"resolve_shards([]) returned {got!r}")


def test_float_tokens_rejected(tmp_path):
    with pytest.raises((ValueError, TypeError)):
        write_shard(tmp_path / "x.bin", np.array([1.7, 2.2]))


# ---------------------------------------------------------------------------------------------------------
# token ids >= the vocabulary: ShardError at open (not an IndexError in the embedding later)

def test_token_id_at_or_above_gpt2_vocab_rejected_at_open(tmp_path):
    path = write_shard(tmp_path / "v.bin", [50256, 10, 50257, 5, 60000])
    assert shard_header(path) == 5  # the header is fine: only the ids are wrong
    with pytest.raises(ShardError) as info:
        read_shard(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: token id 50257 at position 2 is >= the vocabulary size 50257"), msg
    assert msg.endswith("not a shard of this tokenizer, a corrupt one, or a vocab_size too small for it"), msg
    assert "\n" not in msg


def test_largest_gpt2_id_accepted(tmp_path):
    path = write_shard(tmp_path / "ok.bin", [0, 50256, 1])
    assert read_shard(path).tolist() == [0, 50256, 1]


def test_vocab_size_keyword(tmp_path):
    path = write_shard(tmp_path / "small.bin", np.arange(7) * 50)  # ids 0..300
    assert len(read_shard(path, vocab_size=301)) == 7
    with pytest.raises(ShardError, match=r"token id 300 at position 6 is >= the vocabulary size 300"):
        read_shard(path, vocab_size=300)
    with pytest.raises(ShardError, match=r"token id 100 at position 2 is >= the vocabulary size 64"):
        read_shard(path, vocab_size=64)  # the first bad position is the one named
    assert read_shard(write_shard(tmp_path / "e.bin", []), vocab_size=1).size == 0
    with pytest.raises(ValueError):
        read_shard(path, vocab_size=0)


def test_token_range_check_is_fast(tmp_path):
    # one vectorised max over the memmap: 20M tokens in milliseconds (a per-token Python loop takes seconds)
    path = write_shard(tmp_path / "big.bin", np.arange(20_000_000, dtype=np.int64) % 50257)
    start = time.perf_counter()
    tokens = read_shard(path)
    assert time.perf_counter() - start < 1.0
    assert isinstance(tokens, np.memmap) and len(tokens) == 20_000_000


def test_training_stream_fails_at_the_bad_shard_with_its_name(tmp_path):
    """Every shard's token ids are checked once, when the stream is made: a bad second shard fails before the first
    step, not when the stream reaches it mid-run (on the training clock)."""
    from speedrun.data.stream import BatchStream

    write_shard(tmp_path / "t_000000.bin", np.arange(300) % 50257)
    bad = write_shard(tmp_path / "t_000001.bin", np.r_[np.arange(299), 50300])
    with pytest.raises(ShardError, match=rf"^{re.escape(str(bad))}: token id 50300 at position 299 is >= the "
                                         rf"vocabulary size 50257"):
        BatchStream(str(tmp_path / "t_*.bin"), batch_tokens=128, seq_len=64)
    stream = BatchStream(str(tmp_path / "t_*.bin"), batch_tokens=128, seq_len=64, vocab_size=50301)
    for _ in range(4):
        stream.next_step()  # both shards, read without a second check


@pytest.mark.parametrize("kind, opener, command", [("xz", lzma.open, "xz -dk"), ("gzip", gzip.open, "gunzip -k")])
def test_a_compressed_shard_is_named_as_such(tmp_path, kind, opener, command):
    raw = write_shard(tmp_path / "s.bin", np.arange(2000) % 50257).read_bytes()
    packed = tmp_path / f"s.bin.{kind}"
    with opener(packed, "wb") as f:
        f.write(raw)
    with pytest.raises(ShardError, match=rf"^{re.escape(str(packed))}: {kind}-compressed; decompress it first "
                                         rf"\({command} "):
        shard_header(packed)
