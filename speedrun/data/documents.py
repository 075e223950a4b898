"""Documents from your files, in reading order: plain text, JSON lines (`text` field), Parquet (`text` column).

Text and JSON lines may come compressed (.gz, .xz, .bz2: `.jsonl.gz`), read as they decompress. A .txt file is one
document, or (`txt_docs`) divides into documents at its lines, blank lines or `<|endoftext|>` markers: one large text
(a book, a TinyStories dump) then still gives a val shard of whole documents. Bad input is one line naming the file
(and line or row where it applies).
"""

import bz2
import contextlib
import gzip
import itertools
import json
import lzma
import os
import re
import zlib
from pathlib import Path

from speedrun.errors import SpeedrunError
from speedrun.files import broken_link, each_file_once, folder_files, glob_files
from speedrun.words import plural

PARQUET_BATCH_ROWS = 1024
# How a .txt file divides into documents: what stands between two of them (None: the whole file is one).
# `paragraphs`: one or more blank lines (a line of spaces counts as blank), the next line's indent kept.
TXT_SEPARATORS = {"file": None, "lines": r"\r?\n", "paragraphs": r"\r?\n(?:[ \t\f\v]*\r?\n)+",
                  "eot": re.escape("<|endoftext|>")}


class TokenizeError(SpeedrunError, ValueError):
    """An input file cannot be tokenized. One line naming the file (and line or row where it applies)."""


class ReadPosition:
    """How far the readers are through their files, in bytes on disk: a compressed file counts its compressed bytes,
    a Parquet file the share of its rows read. A progress bar's count, whose total is the inputs' sizes on disk."""

    def __init__(self):
        self.finished = 0  # bytes of the files read to their end
        self._size = 0
        self._offset = lambda: 0  # where the reader is in the current file

    def start(self, size: int) -> None:
        self._size, self._offset = size, lambda: 0

    def reading(self, offset) -> None:
        self._offset = offset

    def end(self) -> None:
        self.finished += self._size
        self.start(0)

    @property
    def bytes(self) -> int:
        try:
            return self.finished + min(self._offset(), self._size)
        except (OSError, ValueError):  # a closed file: read to its end
            return self.finished + self._size


def expand_inputs(inputs: list[str], skipped: list[Path] | None = None,
                  repeated: list[Path] | None = None, broken: list[Path] | None = None) -> list[Path]:
    """Files in reading order: each input as given (a glob: its files, sorted); a folder's supported files
    recursively (symlinked folders followed), sorted by path.
    Other files found in folders are appended to `skipped` (when given), and links to nothing found in folders or
    globs to `broken`; named files must be supported.
    A file reached twice (named and inside a named folder, or named twice) is read once, where first reached, and
    its later mentions go to `repeated`: its documents twice would put val's documents into train as well."""
    if not inputs:
        raise TokenizeError("no input files given")
    files: list[Path] = []
    for item in inputs:
        p = Path(os.path.expanduser(str(item)))
        if not p.exists() and (matched := glob_files(p)) is not None:  # a quoted glob, as inspect and train take
            dangling = [f for f in matched if broken_link(f)]
            if not matched or len(dangling) == len(matched):
                raise TokenizeError(f"{item}: matches no files{_broken_hint(dangling)}")
            if broken is not None:
                broken.extend(dangling)
            files.extend(expand_inputs([str(f) for f in matched if f not in dangling], skipped, repeated, broken))
            continue
        if p.is_dir():
            dangling: list[Path] = []
            try:
                found = folder_files(p, dangling)
            except OSError as e:
                raise TokenizeError(f"{e.filename or p}: cannot read the folder ({e.strerror or one_line(e)})") from None
            ok = [f for f in found if reader_of(f)]
            if skipped is not None:
                skipped.extend(f for f in found if not reader_of(f))
            if not ok:
                raise TokenizeError(f"{p}: folder holds no {', '.join(SUPPORTED)} files{_broken_hint(dangling)}")
            if broken is not None:
                broken.extend(dangling)
            files.extend(ok)
        elif p.is_file():
            if not reader_of(p):
                raise TokenizeError(f"{p}: unsupported file type {''.join(p.suffixes[-2:]) or '(no extension)'!r}; "
                                    f"use .txt (one document per file), .jsonl/.json (JSON lines with a "
                                    f"\"text\" field), either maybe compressed ({'/'.join(COMPRESSED)}), "
                                    f"or .parquet (a \"text\" column)")
            files.append(p)
        elif p.exists():
            raise TokenizeError(f"{p}: not a regular file")
        elif p.is_symlink():
            raise TokenizeError(f"{p}: a broken symlink (to {os.readlink(p)})")
        else:
            raise TokenizeError(f"{p}: no such file or folder")
    return each_file_once(files, repeated)


def link_target(link: Path) -> str:
    return f"{link} -> {os.readlink(link)}"


def _broken_hint(dangling: list[Path]) -> str:
    """Where nothing else was found: the links to nothing that were, so the error is not 'no files' alone."""
    return f" ({plural(len(dangling), 'broken symlink')}: {link_target(dangling[0])})" if dangling else ""


def one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _blank(text: str) -> bool:
    """No text to tokenize: empty or only whitespace. The same rule for every format (a file, a line, a row)."""
    return not text or text.isspace()


def _read_text(path: Path, txt_docs: str = "file", position: ReadPosition | None = None):
    with _open(path, position) as f:
        data = _read_or_fail(path, f.read)
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is not part of the text
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TokenizeError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x} "
                            f"at offset {e.start}); binary file?") from None
    if _blank(text):  # after decoding, so a file of only a byte-order mark or Unicode spaces counts as empty
        raise TokenizeError(f"{path}: " + ("holds no text, only whitespace" if text else "empty file") +
                            " (no text to tokenize)")
    if "\x00" in text:
        offset = data.index(b"\x00")
        line = data.count(b"\n", 0, offset) + 1
        raise TokenizeError(f"{path}: line {line}: NUL byte at offset {offset}; binary file?")
    del data  # a large file: hold its text once, not its bytes as well
    handed = 0  # characters of the text handed out: the read position, the file itself being read whole at once
    if position is not None:
        size, chars = path.stat().st_size, len(text)
        position.reading(lambda: size * handed // chars)  # `handed` as it stands when asked
    separator = TXT_SEPARATORS[txt_docs]
    if separator is None:
        handed = len(text)
        yield text
        return
    count, start = 0, 0
    for m in itertools.chain(re.finditer(separator, text), [None]):  # None: the piece after the last separator
        piece = text[start: m.start() if m else len(text)].strip("\r\n")  # line breaks by a marker: in neither
        start = handed = m.end() if m else len(text)
        if not _blank(piece):  # blank pieces (a trailing separator, blank lines) carry no document
            count += 1
            yield piece
    if count == 0:
        raise TokenizeError(f"{path}: no documents (--txt-docs {txt_docs}: only separators and blank space)")


def _field_hint(field: str) -> str:
    return "; --text-field NAME reads another" if field == "text" else ""


_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: in no UTF-8 text
_ARRAY_HINT = "; expected JSON lines (one object per line), not a JSON array"


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _read_jsonl(path: Path, field: str = "text", position: ReadPosition | None = None):
    count, lineno = 0, 0
    with _open(path, position) as f:
        while raw := _read_or_fail(path, f.readline, lineno + 1):
            lineno += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TokenizeError(f"{path}: line {lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                                    f"column {e.start + 1}); binary file?") from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue  # blank lines (a trailing newline, spacing) carry no document
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                start = line.lstrip()[:1]
                hint = (_ARRAY_HINT if lineno == 1 and start == "["
                        else "; expected JSON lines (each object whole on one line), not an object over several lines"
                        if lineno == 1 and start == "{" and e.pos >= len(line.rstrip()) else "")  # cut at the line end
                # some of json's messages end in "at" ("Invalid control character at"): one "at" before the column
                raise TokenizeError(f"{path}: line {lineno}: not valid JSON ({e.msg.removesuffix(' at')} at column "
                                    f"{e.colno}){hint}"
                                    ) from None
            if not isinstance(obj, dict):
                # a whole JSON array on line 1 (a .json file of one line) is the same mistake as one over several lines
                hint = _ARRAY_HINT if lineno == 1 and isinstance(obj, list) and any(isinstance(o, dict) for o in obj) \
                    else ""
                raise TokenizeError(f"{path}: line {lineno}: expected a JSON object with a \"{field}\" field, "
                                    f"got {_json_type(obj)}{hint}")
            if field not in obj:
                keys = ", ".join(list(obj)[:8]) or "none"
                raise TokenizeError(f"{path}: line {lineno}: no \"{field}\" field (fields: {keys}){_field_hint(field)}")
            text = obj[field]
            if not isinstance(text, str):
                raise TokenizeError(f"{path}: line {lineno}: \"{field}\" is {_json_type(text)}, not a string")
            if _blank(text):
                raise TokenizeError(f"{path}: line {lineno}: \"{field}\" is {'only whitespace' if text else 'empty'} "
                                    f"(no text to tokenize)")
            # only an escape (\ud800) gives one: unescaped, its bytes are not UTF-8, refused above; the BPE would
            # silently make it U+FFFD
            if "\\u" in line and (m := _SURROGATE.search(text)):
                raise TokenizeError(f"{path}: line {lineno}: \"{field}\" is not Unicode text (a lone surrogate "
                                    f"\\u{ord(m[0]):04x} at character {m.start() + 1})")
            count += 1
            yield text
    if count == 0:
        raise TokenizeError(f"{path}: no documents (empty file or only blank lines)")


def open_parquet(path: Path, field: str = "text"):
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as e:
        raise TokenizeError(f"{path}: not a readable Parquet file ({one_line(e)})") from None
    if field not in schema.names:
        raise TokenizeError(f"{path}: no \"{field}\" column (columns: {', '.join(schema.names[:8]) or 'none'})"
                            f"{_field_hint(field)}")
    t = schema.field(field).type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or
            (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t))):
        raise TokenizeError(f"{path}: \"{field}\" column has type {t}, not string")
    if pf.metadata.num_rows == 0:
        raise TokenizeError(f"{path}: no documents (0 rows)")
    return pf


def _read_parquet(path: Path, field: str = "text", position: ReadPosition | None = None):
    import pyarrow as pa
    pf = open_parquet(path, field)
    row = rows_read = 0
    if position is not None:
        size, rows = path.stat().st_size, pf.metadata.num_rows
        position.reading(lambda: size * rows_read // rows)  # `rows_read` as it stands when asked
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[field]):
            col = batch.column(0)
            if col.null_count:
                first = col.is_null().to_pylist().index(True) + row + 1
                raise TokenizeError(f"{path}: row {first}: \"{field}\" is null, not a string")
            texts = col.to_pylist()
            rows_read = row + batch.num_rows
            for i, text in enumerate(texts):
                if _blank(text):
                    raise TokenizeError(f"{path}: row {row + i + 1}: \"{field}\" is "
                                        f"{'only whitespace' if text else 'empty'} (no text to tokenize)")
            yield from texts
            row += batch.num_rows
    except (pa.ArrowException, OSError) as e:
        raise TokenizeError(f"{path}: row {row + 1}: cannot read Parquet data ({one_line(e)})") from None


READERS = {".txt": _read_text, ".jsonl": _read_jsonl, ".json": _read_jsonl, ".parquet": _read_parquet}
SUPPORTED = tuple(READERS)
COMPRESSED = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}  # Parquet compresses inside: not for .parquet


def reader_of(path: Path) -> str | None:
    """The reader's key for a file: its suffix, or the one before a compression suffix (.jsonl.gz); None: no reader."""
    *inner, last = [""] + [s.lower() for s in path.suffixes[-2:]]
    kind = inner[-1] if last in COMPRESSED else last
    return kind if kind in READERS and not (last in COMPRESSED and kind == ".parquet") else None


@contextlib.contextmanager
def _open(path: Path, position: ReadPosition | None = None):
    """The file's bytes, decompressed as it is read where its name says so; `position` follows the file on disk."""
    with open(path, "rb") as raw:
        if position is not None:
            position.reading(raw.tell)
        decompress = COMPRESSED.get(path.suffix.lower())
        if decompress is None:
            yield raw
        else:
            with decompress(raw) as f:  # closing it leaves `raw` open: the outer `with` closes that
                yield f


def _read_or_fail(path: Path, read, lineno: int | None = None):
    """read(), with a damaged or truncated compressed file (or a failing disk) as one line naming the file."""
    try:
        return read()
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as e:
        where = f"line {lineno}: " if lineno else ""
        raise TokenizeError(f"{path}: {where}cannot read it ({one_line(e)})") from None


def iter_documents(files: list[Path], txt_docs: str = "file", field: str = "text",
                   position: ReadPosition | None = None):
    """Each file's documents in turn: a .txt file's as `txt_docs` divides it, JSON lines' and Parquet's from `field`.
    `position`, where given, follows the reading in bytes on disk."""
    for f in files:
        kind = reader_of(f)
        if position is not None:
            position.start(f.stat().st_size)
        yield from (_read_text(f, txt_docs, position) if kind == ".txt" else READERS[kind](f, field, position))
        if position is not None:
            position.end()


