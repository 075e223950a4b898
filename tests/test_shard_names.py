"""Shard names NAME_ROLE_DIGITS.bin read exactly: a tokenize rerun replaces only its own name's shards, a name holding
`_val` or `_train` reads as one name (for --data, a folder's val files and eval), and a folder of several names
tells eval how to pick one with eval's own option."""

from __future__ import annotations

import os

import numpy as np
import pytest

from speedrun.data.demo import data_files, name_glob, one_name, role_shards
from speedrun.data.shards import ShardError, resolve_shards, shard_header, write_shard
from speedrun.data.tokenize import tokenize_files
from speedrun.run_data import data_folder_overrides


def _texts(folder, n: int = 6):
    folder.mkdir()
    for i in range(n):
        (folder / f"{i}.txt").write_text(f"document number {i}, some words to tokenize. " * 10)
    return str(folder)


def _shards(folder, *names):
    for name in names:
        write_shard(folder / name, np.arange(10) % 50_000)


def test_a_rerun_removes_only_its_own_names_shards(tmp_path):
    src, out = _texts(tmp_path / "in"), tmp_path / "out"
    for name in ("a_train", "a_val"):  # a_train_train_000000.bin ..., a_val_val_000000.bin
        tokenize_files([src], str(out), name=name, shard_tokens=100, workers=1)
    theirs = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(theirs) > 4
    tokenize_files([src], str(out), name="a", shard_tokens=100, workers=1)
    s = tokenize_files([src], str(out), name="a", shard_tokens=10_000, workers=1)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in theirs} == theirs  # the other names' kept
    assert sorted(p.name for p in out.iterdir() if p.name not in theirs) == ["a_train_000000.bin", "a_val_000000.bin"]
    assert len(s["replaced"]) == 5  # a's own shards beyond the first


def test_a_name_holding_a_role_reads_as_one_name(tmp_path):
    out = tmp_path / "out"
    tokenize_files([_texts(tmp_path / "in")], str(out), name="my_val", workers=1)
    assert [p.name for p in role_shards(out, "val")] == ["my_val_val_000000.bin"]  # not my_val_train_*
    assert [p.name for p in role_shards(out, "train")] == ["my_val_train_000000.bin"]
    assert one_name(out, str(out)) == "my_val"
    assert data_folder_overrides(str(out), []) == [f"train_files={out}/my_val_train_[0-9]*.bin",
                                                   f"val_files={out}/my_val_val_[0-9]*.bin"]
    assert [p.name for p in data_files(str(out), "val")] == ["my_val_val_000000.bin"]
    assert [p.name for p in data_files(f"{out}/my_val_val_*.bin", "val")] == ["my_val_val_000000.bin"]


def test_fineweb_names_and_names_that_are_no_shards(tmp_path):
    _shards(tmp_path, "fineweb_val_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin",
            "notes_val_x.bin", "_val_000000.bin")
    assert [p.name for p in role_shards(tmp_path, "train")] == ["fineweb_train_000001.bin", "fineweb_train_000002.bin"]
    assert [p.name for p in data_files(str(tmp_path), "val")] == ["fineweb_val_000000.bin"]
    assert data_folder_overrides(str(tmp_path), [])[1] == f"val_files={tmp_path}/fineweb_val_[0-9]*.bin"


def test_several_names_hint_in_the_options_of_train_and_eval(tmp_path):
    _shards(tmp_path, "a_train_000000.bin", "a_val_000000.bin", "b_train_000000.bin", "b_val_000000.bin")
    with pytest.raises(ShardError, match=rf"^{tmp_path}: holds the shards of 2 names \(a, b\), which would train on all "
                                         rf"of them; keep one name per folder, or pick one: --set 'train_files="
                                         rf"{tmp_path}/b_train_\[0-9\]\*\.bin' --set 'val_files={tmp_path}/b_val_\[0-9\]\*\.bin'$"):
        data_files(str(tmp_path), "train")
    with pytest.raises(ShardError) as info:
        data_files(str(tmp_path), "val", "val")  # as `speedrun eval --val FOLDER` reads it
    assert str(info.value).endswith(f"which would score all of them; keep one name per folder, or pick one: "
                                    f"--val '{tmp_path}/b_val_[0-9]*.bin'")


def test_the_glob_a_name_is_given_takes_no_other_names_shards(tmp_path):
    # tokenize's suggested --set for name x, beside a name x_val: x_val_*.bin would validate on x_val's train shard
    _shards(tmp_path, "x_train_000000.bin", "x_val_000000.bin", "x_val_train_000000.bin", "x_val_val_000000.bin")
    assert [p.name for p in data_files(name_glob(str(tmp_path), "x", "val"), "val")] == ["x_val_000000.bin"]
    assert [p.name for p in data_files(name_glob(str(tmp_path), "x", "train"), "train")] == ["x_train_000000.bin"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_shard_link_to_nothing_is_named_not_dropped(tmp_path):
    """A folder's, or a glob's, shard that is a link to nothing (a moved disk): training on the others without a
    word would be training on less data; shard_header names it, as inspect and the run's data check do."""
    _shards(tmp_path, "x_train_000000.bin", "x_val_000000.bin")
    (tmp_path / "x_train_000001.bin").symlink_to("/gone/x_train_000001.bin")
    link = tmp_path / "x_train_000001.bin"
    for spec in (str(tmp_path), name_glob(str(tmp_path), "x", "train"), str(tmp_path / "*_train_*.bin")):
        assert data_files(spec, "train")[-1] == link, spec
    assert link in resolve_shards(tmp_path)
    with pytest.raises(ShardError, match=rf"^{link}: a broken symlink \(to /gone/x_train_000001\.bin\), not a shard "
                                         rf"file$"):
        shard_header(link)
