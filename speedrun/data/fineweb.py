"""Download the cached GPT-2 FineWeb shards the speedrun trains on from the Hugging Face hub.

A file counts as present only if `shard_header` accepts it: an invalid one is fetched again, and one still invalid
after fetching is removed. huggingface_hub writes to `.incomplete` files under `<dir>/.cache/huggingface/` and
renames at the end (resuming them next run), so a file under its final name is complete or caught by the check.
A present file is named with the hub commit huggingface_hub recorded when it downloaded it there (`hub_record`); one
with no such record (copied in, made by other means, or changed since) is kept, with a line saying so.
"""

import contextlib
import errno
import importlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from speedrun.data.shards import ShardError, shard_header
from speedrun.errors import SpeedrunError
from speedrun.files import check_writable_folder, remove_stale_temps, say_removed, write_atomic
from speedrun.words import plural


@dataclass(frozen=True)
class Variant:
    repo_id: str
    prefix: str  # files are {prefix}_val_000000.bin and {prefix}_train_000001.bin ...
    max_train_shards: int
    default_dir: str


VARIANTS = {
    "10B": Variant("kjj0/fineweb10B-gpt2", "fineweb", 103, "data/fineweb10B"),
    "100B": Variant("kjj0/fineweb100B-gpt2", "fineweb", 1028, "data/fineweb100B"),
    "edu10B": Variant("kjj0/finewebedu10B-gpt2", "finewebedu", 99, "data/finewebedu10B"),
}

SHARD_TOKENS = 100_000_000  # tokens in each train shard of these repos

# Seconds to wait for the hub's first answer. huggingface_hub's own default path retries an unreachable hub with
# back-off (about 25 s here, minutes where packets are dropped); one probe without retries fails within this.
DEFAULT_PROBE_TIMEOUT = 10.0


class HubError(SpeedrunError, ConnectionError):
    """The Hugging Face hub could not be reached or refused a download. One line, naming the file."""


def shard_filenames(variant: str, train_shards: int) -> tuple[Variant, list[str]]:
    """The hub file names for `variant`: the val shard first, then train shards 1..train_shards."""
    if variant not in VARIANTS:
        raise SpeedrunError(f"unknown FineWeb variant {variant!r} (choose from {', '.join(VARIANTS)})")
    v = VARIANTS[variant]
    if not 0 <= train_shards <= v.max_train_shards:
        raise SpeedrunError(f"--train-shards {train_shards}: {v.repo_id} has train shards 1..{v.max_train_shards} "
                            f"(100M tokens each); choose 0..{v.max_train_shards}")
    return v, [f"{v.prefix}_val_000000.bin"] + [f"{v.prefix}_train_{i:06d}.bin" for i in range(1, train_shards + 1)]


def download_hint(pattern, steps: int, batch_tokens: int) -> str:
    """For shard paths in a variant's default folder: how to download enough train shards for `steps` steps of
    `batch_tokens` (as `; get them with ...`); elsewhere ''."""
    for name, v in VARIANTS.items():
        if Path(pattern).parts[:len(Path(v.default_dir).parts)] == Path(v.default_dir).parts:
            n = -(-steps // ((SHARD_TOKENS - 1) // batch_tokens))
            if n > v.max_train_shards:
                return f"; {v.repo_id} has {v.max_train_shards} train shards, the run needs {n}: set train_loop = true"
            variant = "" if name == "10B" else f" --variant {name}"
            return f"; get them with `speedrun data fineweb{variant} --train-shards {n}`"
    return ""


def _network_errors() -> tuple[type[BaseException], ...]:
    # hub errors (LocalEntryNotFoundError, HfHubHTTPError, OfflineModeIsEnabled, ...) are OSErrors
    errors: list[type[BaseException]] = [OSError]
    for client in ("httpx2", "httpx"):  # huggingface_hub's HTTP client; its connect/timeout errors are not OSErrors
        with contextlib.suppress(ImportError):
            errors.append(importlib.import_module(client).HTTPError)
    return tuple(errors)


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split()) or "no details"
    text = text.split(" For more information check:")[0]  # huggingface_hub appends a docs link to HTTP errors
    return f"{type(e).__name__}: {text if len(text) <= limit else text[: limit - 3] + '...'}"


def _describe_failure(e: BaseException, where: str, target: Path) -> str:
    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, OSError) and not isinstance(e, ConnectionError) and status is None and (
            isinstance(e, PermissionError) or e.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES)):
        return f"cannot write {target} while downloading {where} ({_one_line(e)})"
    if type(e).__name__ == "OfflineModeIsEnabled":
        return f"cannot download {where}: HF_HUB_OFFLINE is set (unset it to download)"
    if status is not None:
        return f"the Hugging Face hub refused {where} (HTTP {status}; {_one_line(e)}): check the repo and file name"
    return f"cannot reach the Hugging Face hub to download {where} ({_one_line(e)}): check the network or HF_ENDPOINT"


def hub_fetch(repo_id: str, filename: str, out_dir: str | os.PathLike) -> Path:
    """The default fetch: probe the hub once without retries (bounding what an unreachable network costs), then
    `hf_hub_download` into `out_dir` (huggingface_hub's resume, progress bars and local-dir metadata)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    try:
        timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or DEFAULT_PROBE_TIMEOUT)
    except ValueError:
        value = os.environ["HF_HUB_ETAG_TIMEOUT"]
        raise SpeedrunError(f"HF_HUB_ETAG_TIMEOUT={value!r}: not a number of seconds") from None
    get_hf_file_metadata(hf_hub_url(repo_id, filename, repo_type="dataset"), timeout=timeout)
    return Path(hf_hub_download(repo_id, filename, repo_type="dataset", local_dir=str(out_dir), etag_timeout=timeout))


def hub_record(out: Path, name: str) -> str | None:
    """The hub commit huggingface_hub recorded when it downloaded `name` into `out`, or None: no record, one that
    does not read as its local-dir metadata (commit, etag and time, a line each), or a file modified after it
    (huggingface_hub's own rule, with its 1 s allowance). Read directly: huggingface_hub's reader is private and
    creates folders and a lock file."""
    record = out / ".cache" / "huggingface" / "download" / f"{name}.metadata"
    try:
        commit, _etag, stamp = record.read_text().split("\n")[:3]
        return commit if commit and (out / name).stat().st_mtime - 1 <= float(stamp) else None
    except (OSError, ValueError):
        return None


def _source(out: Path, name: str) -> str:
    commit = hub_record(out, name)
    return f"hub commit {commit[:7]}" if commit else "no record of a hub download here: delete it to fetch the hub's"


def _valid(path: Path) -> tuple[int | None, str]:
    try:
        return shard_header(path), ""
    except ShardError as e:
        return None, str(e)


def _place(got: Path, target: Path) -> None:
    """Move a fetched file that landed elsewhere (an injected fetch) to `target`, atomically."""
    if got.resolve() == target.resolve():
        return
    with open(got, "rb") as src:
        write_atomic(target, lambda f: shutil.copyfileobj(src, f))


def _download_all(v: Variant, names: list[str], out: Path, fetch) -> list[Path]:
    for i, name in enumerate(names, 1):
        target = out / name
        where = f"{v.repo_id}/{name}"
        tag = f"[{i}/{len(names)}] {name}"
        status = "downloaded"
        if target.exists():
            count, reason = _valid(target)
            if count is not None:
                print(f"{tag}: {target.stat().st_size / 1e6:,.1f} MB ok (cached; {_source(out, name)})", flush=True)
                continue
            # A short file (an interrupted copy) or a corrupt one: never keep it under the final name.
            print(f"{tag}: invalid local file ({reason}); fetching it again", flush=True)
            target.unlink()
            status = "refetched"
        try:
            _place(Path(fetch(v.repo_id, name, str(out))), target)
        except _network_errors() as e:
            if target.exists() and _valid(target)[0] is None:
                target.unlink()
            raise HubError(_describe_failure(e, where, target)) from None
        count, reason = _valid(target)
        if count is None:
            target.unlink(missing_ok=True)
            raise ShardError(f"{where}: the downloaded file is not a valid shard ({reason}); removed it, run again")
        commit = hub_record(out, name)
        print(f"{tag}: {target.stat().st_size / 1e6:,.1f} MB ({count:,} tokens) {status}"
              + (f" (hub commit {commit[:7]})" if commit else ""), flush=True)
    return [out / name for name in names]


def download_fineweb(variant: str, train_shards: int, out_dir: str | None, fetch=None) -> list[Path]:
    """Fetch the val shard and train shards 1..train_shards of `variant` into `out_dir`; return their paths.
    `fetch(repo_id, filename, out_dir) -> path` does one download (default: `hub_fetch`); tests inject their own."""
    v, names = shard_filenames(variant, train_shards)
    out = Path(out_dir if out_dir is not None else v.default_dir)
    check_writable_folder(out, "--dir")
    print(f"FineWeb {variant}: {plural(len(names), 'file')} ({train_shards} train + val) from {v.repo_id} into {out}/",
          flush=True)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    for line in say_removed(remove_stale_temps(out), "a download"):
        print(f"note: {line}", flush=True)
    start = time.perf_counter()
    try:
        paths = _download_all(v, names, out, hub_fetch if fetch is None else fetch)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # made by this call and still empty: leave no trace
        raise
    print(f"done: {len(paths)} files in {out}/ ({time.perf_counter() - start:.1f}s)", flush=True)
    return paths
