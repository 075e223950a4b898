"""GPT-2 BPE built offline from the bundled files: known ids, documents, round trips, equality with tiktoken."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from speedrun.data import tokenizer
from speedrun.data.tokenizer import EOT, VOCAB_SIZE, decode, encode_document, gpt2

VARIED_TEXT = (
    "The quick brown fox jumps over the lazy dog. It's 3:45pm on 2025-02-14; pi ~ 3.14159, e=2.71828...\n"
    "Prices: $1,299.99 (20% off!), #hashtags & @mentions -- don't, won't, I'll, we've, they're, she'd.\n"
    "Unicode: café, naïve, Zürich, Ελληνικά, русский текст, 日本語のテキスト, 한국어, emoji 🚀🔥👍🏽, "
    "math ∑∫√∞≠≤, quotes “curly” ‘single’ «guillemets», dash — en–dash.\n"
    "\tTabs\tand   multiple   spaces,\r\nwindows newlines,\n\n\nblank lines and trailing spaces   \n"
    "Code: def f(x): return x**2 + 1  # comment\n{\"json\": [1, 2, 3], 'nested': {'k': None}}\n"
    "<|endoftext|> written as plain text is not a special token here.\n"
    "1234567890 0x1F 1e-10 -42 +7 ½ ¾ ①②③ ٣٤٥"
)


def test_known_ids():
    enc = gpt2()
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert enc.encode_ordinary(" the") == [262]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [EOT]
    assert enc.n_vocab == VOCAB_SIZE == 50257
    assert EOT == 50256 == enc.eot_token
    assert enc.decode([50256]) == "<|endoftext|>"


def test_encoding_is_cached():
    assert gpt2() is gpt2()


def test_encode_document_prefixes_eot():
    ids = encode_document("Hello world")
    assert ids == [50256, 15496, 995]
    assert encode_document("") == [50256]


def test_literal_eot_text_is_ordinary():
    """A document that contains the text "<|endoftext|>" must not get a document boundary inside it."""
    ids = encode_document("a <|endoftext|> b")
    assert ids[0] == EOT
    assert EOT not in ids[1:]
    assert decode(ids[1:]) == "a <|endoftext|> b"


def test_decode_round_trip_on_varied_text():
    ids = gpt2().encode_ordinary(VARIED_TEXT)
    assert all(0 <= i < EOT for i in ids)
    assert decode(ids) == VARIED_TEXT
    doc = encode_document(VARIED_TEXT)
    assert doc[1:] == ids
    assert decode(doc) == "<|endoftext|>" + VARIED_TEXT


def test_decode_accepts_numpy_and_tensors():
    import numpy as np
    import torch

    ids = gpt2().encode_ordinary("Hello world, again.")
    assert decode(np.array(ids, dtype=np.uint16)) == "Hello world, again."
    assert decode(torch.tensor(ids, dtype=torch.int32)) == "Hello world, again."


def test_bundled_files_are_the_openai_gpt2_files():
    # sha256 pinned by tiktoken for OpenAI's gpt-2 vocab.bpe / encoder.json (tiktoken_ext/openai_public.py)
    pinned = {
        "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    }
    for name, digest in pinned.items():
        assert hashlib.sha256((tokenizer.BPE_DIR / name).read_bytes()).hexdigest() == digest, name


def test_building_leaves_env_and_cache_dir_alone(tmp_path, monkeypatch):
    """gpt2() must not change TIKTOKEN_CACHE_DIR, nor write into the cache dir it points to."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    gpt2.cache_clear()
    try:
        enc = gpt2()
        assert os.environ["TIKTOKEN_CACHE_DIR"] == str(cache)
        assert not cache.exists() or not any(cache.iterdir())
        assert enc.encode_ordinary("Hello world") == [15496, 995]
        monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
        gpt2.cache_clear()
        gpt2()
        assert "TIKTOKEN_CACHE_DIR" not in os.environ
    finally:
        gpt2.cache_clear()


_COMPARE_SCRIPT = textwrap.dedent("""
    import json, sys
    import tiktoken
    from speedrun.data.tokenizer import gpt2
    text = open(sys.argv[1], encoding="utf-8").read()
    ours, ref = gpt2(), tiktoken.get_encoding("gpt2")
    print(json.dumps({
        "same_ranks": ours._mergeable_ranks == ref._mergeable_ranks,
        "same_special": ours._special_tokens == ref._special_tokens,
        "n_vocab": [ours.n_vocab, ref.n_vocab],
        "ours": ours.encode_ordinary(text),
        "ref": ref.encode_ordinary(text),
        "ref_decoded_equal": ref.decode(ours.encode_ordinary(text)) == text,
    }))
""")


def test_same_as_tiktoken_gpt2(shared_dir, tmp_path):
    cache_src = shared_dir / "tokenizer" / "tiktoken_cache"
    if not cache_src.is_dir():
        pytest.skip(f"{cache_src} is not present")
    # a private copy: tiktoken deletes cache files whose hash does not match, so never point it at shared/
    cache = tmp_path / "tiktoken_cache"
    shutil.copytree(cache_src, cache)
    from speedrun.data.demo import data_files
    from speedrun.data.shards import read_shard

    demo = decode(read_shard(data_files("demo", "val")[0])[:2500])
    text = (VARIED_TEXT + "\n" + demo)[:8000]
    assert len(text.encode()) > 4000
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    script = tmp_path / "compare.py"
    script.write_text(_COMPARE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIKTOKEN")}
    env["TIKTOKEN_CACHE_DIR"] = str(cache)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "text.txt")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["same_ranks"] and out["same_special"]
    assert out["n_vocab"] == [50257, 50257]
    assert out["ours"] == out["ref"]
    assert len(out["ours"]) > 1000
    assert out["ref_decoded_equal"]
    assert "TIKTOKEN_CACHE_DIR" not in os.environ or os.environ["TIKTOKEN_CACHE_DIR"] != str(cache)
