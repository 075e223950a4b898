"""What `speedrun data tokenize` reads from its inputs: symlinked folders followed (each file once, a loop ended),
links to nothing named, not dropped; and text that is no Unicode (a lone surrogate) an error like invalid UTF-8."""

from __future__ import annotations

import json
import os
import re

import pytest

from speedrun.data import documents
from speedrun.data.tokenize import TokenizeError, tokenize_files

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def test_a_symlinked_folder_inside_an_input_folder_is_read(tmp_path, capsys):
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "a.txt").write_text("hi\n")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "b.txt").write_text("x\n")
    (tmp_path / "t" / "link").symlink_to("../d2")
    (tmp_path / "t" / "sub").mkdir()
    (tmp_path / "t" / "sub" / "up").symlink_to("..")  # back to a folder above: read once, no endless walk
    s = tokenize_files([str(tmp_path / "t")], str(tmp_path / "o"), val_tokens=0, workers=1)
    assert s["documents"] == 2 and "tokenized 2 files" in capsys.readouterr().out
    # the linked folder also named: its file is read once
    files = documents.expand_inputs([str(tmp_path / "t"), str(tmp_path / "d2")])
    assert files == [tmp_path / "t" / "b.txt", tmp_path / "t" / "link" / "a.txt"]
    # a folder holding only a symlinked folder is that folder's files, not "holds no .txt ... files"
    (tmp_path / "t2").mkdir()
    (tmp_path / "t2" / "link").symlink_to("../d2")
    assert documents.expand_inputs([str(tmp_path / "t2")]) == [tmp_path / "t2" / "link" / "a.txt"]


def test_a_link_to_nothing_in_a_folder_or_glob_is_named(tmp_path, capsys):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "b.txt").write_text("y\n")
    (tmp_path / "t" / "x.txt").symlink_to("nowhere.txt")
    tokenize_files([str(tmp_path / "t")], str(tmp_path / "o"), val_tokens=0, workers=1)
    out = capsys.readouterr().out
    assert f"skipping 1 broken symlink in input folders or globs (e.g. {tmp_path / 't' / 'x.txt'} -> nowhere.txt)" in out
    tokenize_files([str(tmp_path / "t" / "*.txt")], str(tmp_path / "o"), val_tokens=0, workers=1)
    assert "skipping 1 broken symlink" in capsys.readouterr().out
    # nothing else left: an error that names the link
    (tmp_path / "t" / "b.txt").unlink()
    with pytest.raises(TokenizeError, match=r"/t: folder holds no \.txt, \.jsonl, \.json, \.parquet files \(1 broken "
                                            r"symlink: .*/t/x\.txt -> nowhere\.txt\)$"):
        tokenize_files([str(tmp_path / "t")], str(tmp_path / "o2"), workers=1)
    with pytest.raises(TokenizeError, match=r"/t/x\.txt: a broken symlink \(to nowhere\.txt\)$"):
        documents.expand_inputs([str(tmp_path / "t" / "x.txt")])
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize("line, error", [
    ('{"text": "a \\ud800 b"}', r'line 2: "text" is not Unicode text \(a lone surrogate \\ud800 at character 3\)'),
    ('{"text": "end \\uDFFF"}', r'line 2: "text" is not Unicode text \(a lone surrogate \\udfff at character 5\)'),
])
def test_a_lone_surrogate_is_an_error_like_invalid_utf8(tmp_path, line, error):
    """json reads "\\ud800" (an escape, valid JSON) as a lone surrogate, which no UTF-8 holds: tokenized, it became
    U+FFFD without a word, where the same bytes unescaped are an error."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "fine"}) + "\n" + line + "\n")
    with pytest.raises(TokenizeError, match=f"^{re.escape(str(src))}: {error}$"):
        tokenize_files([str(src)], str(tmp_path / "o"), workers=1)
    # a surrogate pair escaped is one character, as it should be
    src.write_text('{"text": "emoji \\ud83d\\ude80"}\n')
    assert list(documents.iter_documents([src])) == ["emoji \U0001f680"]
