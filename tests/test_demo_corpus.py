"""The demo corpus bundled in the package: loads, matches its README, documents well formed, no train/val overlap."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from speedrun.data.demo import DEMO_DIR, data_files
from speedrun.data.shards import read_shard, resolve_shards
from speedrun.data.tokenizer import EOT, decode

README = DEMO_DIR / "README.md"


def _documents(tokens) -> list[tuple[int, ...]]:
    tokens = np.asarray(tokens)
    starts = np.flatnonzero(tokens == EOT)
    return [tuple(d.tolist()) for d in np.split(tokens, starts[1:])]


@pytest.fixture(scope="module")
def splits():
    return {role: np.asarray(read_shard(data_files("demo", role)[0])) for role in ("train", "val")}


@pytest.fixture(scope="module")
def docs(splits):
    return {role: _documents(t) for role, t in splits.items()}


@pytest.fixture(scope="module")
def readme_files() -> dict[str, tuple[int, int, str]]:
    """The README's Files table: name -> (tokens, bytes, sha256)."""
    rows = re.findall(r"^\| `(demo_\w+\.bin)` \| ([\d,]+) \| ([\d,]+) \| `([0-9a-f]{64})` \|$", README.read_text(), re.M)
    assert len(rows) == 2, "README.md must list the two demo shards"
    return {name: (int(t.replace(",", "")), int(b.replace(",", "")), h) for name, t, b, h in rows}


def test_data_files_resolve_to_bundled_shards():
    for role in ("train", "val"):
        files = data_files("demo", role)
        assert files == [DEMO_DIR / f"demo_{role}_000000.bin"]
        assert files[0].is_file()


def test_data_files_passes_other_specs_through(make_shard, tmp_path):
    make_shard([1, 2], name="a.bin")
    make_shard([3, 4], name="b.bin")
    assert data_files(str(tmp_path), "train") == resolve_shards(tmp_path) == [tmp_path / "a.bin", tmp_path / "b.bin"]
    assert data_files(str(tmp_path / "b.*"), "val") == [tmp_path / "b.bin"]


def test_a_folder_of_named_shards_gives_each_role_its_own(make_shard, tmp_path):
    """`speedrun eval latest --val data/mine` on tokenize's folder scores its val shard, not its train shards too."""
    for name in ("mine_train_000001.bin", "mine_train_000000.bin", "mine_val_000000.bin"):
        make_shard([1, 2], name=name)
    assert data_files(str(tmp_path), "train") == [tmp_path / "mine_train_000000.bin", tmp_path / "mine_train_000001.bin"]
    assert data_files(str(tmp_path), "val") == [tmp_path / "mine_val_000000.bin"]
    assert resolve_shards(tmp_path) == sorted(tmp_path.glob("*.bin"))  # `data inspect` still sees all of them


def test_sizes_match_readme(splits, readme_files):
    for role in ("train", "val"):
        tokens, size, digest = readme_files[f"demo_{role}_000000.bin"]
        path = DEMO_DIR / f"demo_{role}_000000.bin"
        assert len(splits[role]) == tokens
        assert path.stat().st_size == size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert len(splits["train"]) > 500_000
    assert len(splits["val"]) > 30_000


def test_readme_totals(splits, docs):
    text = README.read_text()
    m = re.search(r"^\| \*\*Total\*\* \| \| \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|$", text, re.M)
    assert m, "README.md must have a Total row"
    n_docs, train_tokens, val_tokens = (int(g.replace(",", "")) for g in m.groups())
    assert len(docs["train"]) + len(docs["val"]) == n_docs
    assert len(splits["train"]) == train_tokens
    assert len(splits["val"]) == val_tokens


def test_every_document_starts_with_eot(splits, docs):
    for role, tokens in splits.items():
        assert tokens[0] == EOT, role
        assert all(d[0] == EOT for d in docs[role])
        assert sum(len(d) for d in docs[role]) == len(tokens)
        assert all(len(d) > 1 for d in docs[role]), "no empty documents"
        assert tokens.max() <= EOT


def test_train_and_val_share_no_document(docs):
    train, val = set(docs["train"]), set(docs["val"])
    assert len(train) == len(docs["train"]), "duplicate documents in train"
    assert len(val) == len(docs["val"]), "duplicate documents in val"
    assert not train & val


def test_text_is_mostly_plain_english(splits):
    for role, tokens in splits.items():
        sample = tokens[:200_000]  # train: a prefix is plenty
        text = decode(sample)
        assert len(text) > 100_000 or role == "val"
        printable = sum(c.isprintable() or c in "\n\t" for c in text) / len(text)
        ascii_ = sum(c.isascii() for c in text) / len(text)
        assert printable > 0.99, (role, printable)
        assert ascii_ > 0.95, (role, ascii_)
        assert "\ufffd" not in text, "no broken UTF-8 in the decoded text"
        words = re.findall(r"[a-z]+", text.lower())
        common = sum(w in {"the", "a", "of", "to", "and", "is", "in", "you", "it", "that"} for w in words)
        assert common / len(words) > 0.15, (role, common / len(words))


def test_demo_stream_serves_the_tiny_recipe():
    """The tiny recipe (train/val = demo) can build its streams and pass the val-size check."""
    from speedrun.data.stream import BatchStream, check_val_size
    from speedrun.recipe import load_recipe

    r = load_recipe("tiny")
    check_val_size(data_files(r.val_files, "val"), r.val_tokens, r.val_seq_len)
    s = BatchStream(data_files(r.train_files, "train"), r.batch_tokens, r.seq_len, loop=r.train_loop)
    (inputs, targets), = s.next_step()
    assert inputs[0].item() == EOT and inputs.shape == (r.seq_len,)
