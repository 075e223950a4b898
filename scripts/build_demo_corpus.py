#!/usr/bin/env python3
"""Rebuild the bundled demo corpus (speedrun/data/demo: train/val shards, README.md, LICENSES.md).

The text comes from pinned Debian 12 ("bookworm") packages -- the Jargon File and Ambrose Bierce's Devil's
Dictionary (public domain) and the fortune cookie files (BSD) -- fetched with `apt-get download PKG=VERSION`
and unpacked with `dpkg-deb -x` (needs `apt-get update` done). Every step is deterministic, so a rebuild
reproduces the shards byte for byte.  Usage: python scripts/build_demo_corpus.py [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package
from speedrun.data.shards import read_shard, write_shard  # noqa: E402
from speedrun.data.tokenizer import EOT, encode_document  # noqa: E402

SEED = 1337
DOC_CHARS = 4000  # a document is a block of whole entries / fortunes of about this many characters (~1k tokens)
# Debian package -> (pinned version, licence). Pinned so that a rebuild sees exactly the same text.
PACKAGES = {
    "dict-jargon": ("4.4.7-3.1", "Public domain"),
    "dict-devil": ("1.0-13.1", "Public domain"),
    "fortunes-min": ("1:1.99.1-7.3", "BSD-3-Clause"),
    "fortunes": ("1:1.99.1-7.3", "BSD-3-Clause"),
}
# Fortune files left out: ASCII art, song lyrics (mostly still under copyright), ethnic jokes, a translators' note.
SKIP_FORTUNES = {"art", "ascii-art", "songs-poems", "ethnic", "translate-me"}
# Whole groups held out for validation (source, alphabetical block or fortune file), so val shares no
# document -- not even a neighbouring entry of the same block -- with train. About 4% of all tokens.
VAL_GROUPS = {("dict-jargon", "m"), ("dict-devil", "p"), ("fortunes-min", "riddles"), ("fortunes", "startrek"),
              ("fortunes", "goedel")}
VAL_FRACTION = (0.03, 0.05)
VAL_MIN_TOKENS = 40_000
DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


class BuildError(Exception):
    """A step failed; main() prints the message on one line and exits non-zero."""


def log(msg: str) -> None:
    print(f"[build_demo_corpus] {msg}", file=sys.stderr, flush=True)


def fetch(pkg: str, version: str, tmp: Path) -> Path:
    """Download PKG=VERSION with apt and unpack it; return the folder holding its files."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise BuildError("apt-get and dpkg-deb are needed (run on Debian/Ubuntu)")
    log(f"apt-get download {pkg}={version}")
    cmd = ["apt-get", "download", f"{pkg}={version}"]
    r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
    debs = sorted(tmp.glob(f"{pkg}_*.deb"))
    if r.returncode != 0 or len(debs) != 1:
        errs = [ln for ln in r.stderr.splitlines() if ln.startswith("E:")] or r.stderr.strip().splitlines() or ["?"]
        raise BuildError(f"apt-get download {pkg}={version} failed: {errs[-1]} "
                         "(run `apt-get update`; is this Debian 12 bookworm with main enabled?)")
    dest = tmp / pkg
    r = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(dest)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise BuildError(f"dpkg-deb -x {debs[0].name} failed: {r.stderr.strip()}")
    return dest


def letter_ratio(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / max(1, len(chars))


def dict_entries(root: Path, name: str) -> list[str]:
    """The entries of a dictd database in file (alphabetical) order, skipping its 00-database-* metadata."""
    with gzip.open(root / f"usr/share/dictd/{name}.dict.dz") as f:  # dictzip is gzip-compatible
        data = f.read()
    b64 = lambda s: sum(DICTD_B64.index(c) * 64**i for i, c in enumerate(reversed(s)))  # noqa: E731
    spans = set()  # several headwords can point at one entry
    for line in (root / f"usr/share/dictd/{name}.index").read_text(encoding="utf-8").splitlines():
        word, off, length = line.split("\t")
        if not word.startswith("00"):
            spans.add((b64(off), b64(length)))
    return [data[o : o + n].decode("utf-8") for o, n in sorted(spans)]


def clean_jargon(entry: str) -> str:
    """Headword + pronunciation line, then the body dedented with prose paragraphs unwrapped."""
    head, pron, *body = entry.replace("\xa0", " ").replace("\xad", "").split("\n")  # nbsp, soft hyphens
    pron = pron.strip()
    out = [head.strip() + (" " + pron if pron and pron != "//" else "")]
    for para in re.split(r"\n\s*\n", "\n".join(body)):
        lines = [ln.removeprefix("    ") for ln in para.strip("\n").split("\n")]
        if not any(ln.strip() for ln in lines) or re.search("[\u2500-\u257f]", para):
            continue  # empty, or a table drawn with box characters
        if all(not ln[:1].isspace() and "   " not in ln.strip() for ln in lines):  # prose: unwrap the lines
            out.append(re.sub(r"\s+", " ", " ".join(lines)).strip())
        elif letter_ratio(para) >= 0.5:  # code / verse / lists / aligned tables: keep the layout
            out.append("\n".join(ln.rstrip() for ln in lines))
        # else: ASCII art diagram, dropped
    # {cross-reference} markup -> plain words (twice: the source has a few {{doubled}} ones); code braces --
    # content with ; = < or over more than two lines -- stay
    text, xref = "\n\n".join(out), lambda m: re.sub(r"\s+", " ", m.group(1)).strip()  # noqa: E731
    for _ in range(2):
        text = re.sub(r"\{([^{};=<\n]*(?:\n[^{};=<\n]*)?)\}", xref, text)
    return text


def clean_devil(entry: str) -> str:
    """Bierce's entries are already plain text; drop the _italic_ underscores and huge right-aligning indents."""
    text = re.sub(r"(?<![A-Za-z0-9])_([^_\n]+(?:\n[^_\n]+)?)_(?![A-Za-z0-9])", r"\1", entry)
    lines = [re.sub(r"^ {9,}", " " * 8, ln.rstrip()) for ln in text.split("\n")]
    return "\n".join(lines).strip("\n")


def fix_mojibake(s: str) -> str:
    """Undo UTF-8 text that was decoded as Latin-1 (once or twice), as in a few fortunes ('donÃ¢ÂÂt')."""
    while re.search(r"[\x80-\xff]", s):
        try:
            s = s.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            break
    return s


def clean_fortune(text: str) -> str:
    text = re.sub(r".\x08", "", text)  # overstrike (x BS x = bold, _ BS x = underline)
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", fix_mojibake(text))  # bells and other control characters
    return "\n".join(ln.rstrip() for ln in text.split("\n")).strip("\n")


def blocks(items: list[tuple[str, str]], source: str) -> list[tuple[str, str, str]]:
    """Join consecutive (group, text) items into documents of ~DOC_CHARS, never across a group boundary."""
    docs, cur, cur_group = [], [], None
    for group, text in items + [(None, "")]:
        if cur and (group != cur_group or sum(map(len, cur)) >= DOC_CHARS):
            docs.append((source, cur_group, "\n\n".join(cur)))
            cur = []
        cur_group = group
        if text:
            cur.append(text)
    return docs


def collect(roots: dict[str, Path]) -> list[tuple[str, str, str]]:
    """All documents as (package, group, text), in a fixed order."""
    docs, letter = [], lambda e: e[0].lower() if "a" <= e[0].lower() <= "z" else "#"  # noqa: E731
    for pkg, name, clean in (("dict-jargon", "jargon", clean_jargon), ("dict-devil", "devil", clean_devil)):
        entries = [clean(e) for e in dict_entries(roots[pkg], name)]
        docs += blocks([(letter(e), e) for e in entries if e], pkg)  # groups: alphabetical blocks
    seen: set[str] = set()  # the same fortune often sits in several files: keep its first copy only
    dups = 0
    for pkg in ("fortunes-min", "fortunes"):
        items = []
        for path in sorted((roots[pkg] / "usr/share/games/fortunes").iterdir()):
            if path.suffix or path.is_symlink() or path.name in SKIP_FORTUNES:  # .dat indexes, .u8 links
                continue
            for raw in re.split(r"^%\n", path.read_text(encoding="utf-8", errors="replace"), flags=re.M):
                f = clean_fortune(raw)
                dups += f in seen
                if f and f not in seen and letter_ratio(f) >= 0.5:  # low letter ratio = ASCII art / line noise
                    seen.add(f)
                    items.append((path.name, f))
        docs += blocks(items, pkg)
    log(f"{len(seen):,} fortunes kept, {dups:,} duplicate fortunes dropped")
    return docs


def build(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="demo_corpus_") as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)  # lets apt's unprivileged _apt user write the .deb there (no "unsandboxed" warning)
        roots = {pkg: fetch(pkg, ver, tmp) for pkg, (ver, _) in PACKAGES.items()}
        copyrights = {pkg: (roots[pkg] / f"usr/share/doc/{pkg}/copyright").read_text(encoding="utf-8")
                      for pkg in PACKAGES}
        log("cleaning and splitting into documents")
        docs = collect(roots)
    first: dict[str, tuple[str, str, str]] = {}
    for d in docs:  # exact duplicate documents: keep the first
        first.setdefault(d[2], d)
    log(f"{len(first)} documents ({len(docs) - len(first)} duplicate documents dropped); tokenizing")
    split = {"train": [d for d in first.values() if d[:2] not in VAL_GROUPS],
             "val": [d for d in first.values() if d[:2] in VAL_GROUPS]}
    stats: dict[tuple[str, str], list[int]] = {}  # (package, split) -> [documents, tokens]
    toks: dict[str, list[int]] = {}
    for name, ds in split.items():
        random.Random(SEED).shuffle(ds)
        toks[name] = []
        for pkg, _, text in ds:
            toks[name] += (t := encode_document(text))
            st = stats.setdefault((pkg, name), [0, 0])
            st[0], st[1] = st[0] + 1, st[1] + len(t)
    n_train, n_val = len(toks["train"]), len(toks["val"])
    frac = n_val / (n_train + n_val)
    if not (VAL_FRACTION[0] <= frac <= VAL_FRACTION[1] and n_val >= VAL_MIN_TOKENS):
        raise BuildError(f"val is {n_val:,} tokens ({frac:.1%}), outside {VAL_FRACTION} or under "
                         f"{VAL_MIN_TOKENS:,}; adjust VAL_GROUPS")
    paths = {}
    for name in ("train", "val"):
        paths[name] = write_shard(out / f"demo_{name}_000000.bin", toks[name])
        paths[name].chmod(0o644)  # write_shard's temp file is private (0600); these are data files to share
        arr = read_shard(paths[name])  # read back: same tokens, and every document starts with <|endoftext|>
        if not (np.array_equal(arr, toks[name]) and arr[0] == EOT and (arr == EOT).sum() == len(split[name])):
            raise BuildError(f"{paths[name]}: read-back check failed")
        log(f"wrote {paths[name]} ({len(arr):,} tokens, {paths[name].stat().st_size:,} bytes)")
    write_readme(out, stats, paths, n_train, n_val)
    write_licenses(out, copyrights)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "speedrun/data/demo", help="output folder")
    args = ap.parse_args()
    try:
        build(args.out)
    except (BuildError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    log("done")
    return 0


README = """# Demo corpus

A small, freely licensed English corpus (~1M GPT-2 tokens) bundled with speedrun, so a model can be trained and
evaluated offline without downloading FineWeb. The files here are generated; rebuild them (on Debian 12
"bookworm", after `apt-get update`) from the repository root with

    python scripts/build_demo_corpus.py

The script fetches the pinned packages below (`apt-get download PKG=VERSION`, `dpkg-deb -x`), cleans the text
(dictd metadata dropped; Jargon File `{{cross-reference}}` braces removed and wrapped prose unwrapped; Devil's
Dictionary `_italic_` underscores removed; fortune overstrike/control codes and mis-decoded UTF-8 repaired;
box tables and ASCII art dropped), splits it into documents -- runs of dictionary entries with the same initial
letter, or of fortunes from one fortune file, about {doc_chars:,} characters each -- and drops exact duplicates
(a fortune that sits in several files is kept once). Each split is shuffled with seed {seed}; every document is
tokenized with `speedrun.data.tokenizer.encode_document` (`<|endoftext|>` 50256, then GPT-2 BPE) and each
split is written as one shard with `speedrun.data.shards.write_shard`.

Held out for val, as whole groups so that val shares no document with train:
{val_groups}.

Fortune files left out (ASCII art, song lyrics that are mostly still under copyright, ethnic jokes, a
translators' note): {skipped}.

## Sources

| Debian package | Version | Licence | Documents | Train tokens | Val tokens |
|---|---|---|---:|---:|---:|
{rows}
| **Total** | | | {n_docs:,} | {n_train:,} | {n_val:,} |

Val is {frac:.1%} of all tokens; counts include the one `<|endoftext|>` per document. Copyright notices:
`LICENSES.md`. Please cite the Jargon File as "Jargon File 4.4.7".

## Files

| File | Tokens | Bytes | sha256 |
|---|---:|---:|---|
{files}

The build is deterministic: running the script again gives byte-identical shards with these sha256 sums.
"""


def write_readme(out: Path, stats, paths, n_train: int, n_val: int) -> None:
    rows = []
    for pkg, (ver, lic) in PACKAGES.items():
        tr, va = stats.get((pkg, "train"), [0, 0]), stats.get((pkg, "val"), [0, 0])
        rows.append(f"| `{pkg}` | `{ver}` | {lic} | {tr[0] + va[0]:,} | {tr[1]:,} | {va[1]:,} |")
    files = [f"| `{p.name}` | {n:,} | {p.stat().st_size:,} | `{hashlib.sha256(p.read_bytes()).hexdigest()}` |"
             for p, n in ((paths["train"], n_train), (paths["val"], n_val))]
    (out / "README.md").write_text(README.format(
        doc_chars=DOC_CHARS, seed=SEED, skipped=", ".join(sorted(SKIP_FORTUNES)), rows="\n".join(rows),
        val_groups=", ".join(f"{p}:{g}" for p, g in sorted(VAL_GROUPS)), n_docs=sum(s[0] for s in stats.values()),
        n_train=n_train, n_val=n_val, frac=n_val / (n_train + n_val), files="\n".join(files)), encoding="utf-8")


def write_licenses(out: Path, copyrights: dict[str, str]) -> None:
    """Each package's Debian copyright file verbatim (the fortunes' BSD licence requires its notice)."""
    parts = ["# Licences of the demo corpus sources\n\nThe demo shards hold text from the Debian packages below; "
             "each package's `/usr/share/doc/<package>/copyright` file is reproduced verbatim.\n"]
    for i, (pkg, text) in enumerate(copyrights.items()):
        same = [p for p in list(copyrights)[:i] if copyrights[p] == text]  # fortunes-min and fortunes share one
        parts.append(f"## {pkg} {PACKAGES[pkg][0]} ({PACKAGES[pkg][1]})\n")
        parts.append(f"Same copyright file as `{same[0]}` above.\n" if same else f"```\n{text.rstrip()}\n```\n")
    (out / "LICENSES.md").write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
