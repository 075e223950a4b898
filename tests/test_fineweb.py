"""`speedrun data fineweb` without the network: an injected fetch copies from a local folder laid out like the
hub repos. Cached files are skipped, short or corrupt ones re-fetched, bad downloads removed, and an
unreachable hub is one line (also for the real default fetch, in a subprocess)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import killed_mid_write

from speedrun.data.fineweb import HubError, download_fineweb, shard_filenames
from speedrun.data.shards import ShardError, read_shard
from speedrun.errors import SpeedrunError

REPO_DIR = Path(__file__).resolve().parents[1]
REPO = "kjj0/fineweb10B-gpt2"


@pytest.fixture
def hub(tmp_path, make_shard):
    """A local folder laid out like the hub: <root>/<repo_id>/<filename>; small but valid shards."""
    root = tmp_path / "hub"
    for repo, prefix, n in [(REPO, "fineweb", 3), ("kjj0/finewebedu10B-gpt2", "finewebedu", 1)]:
        make_shard(np.arange(1000) % 50257, name=f"{prefix}_val_000000.bin", folder=root / repo)
        for i in range(1, n + 1):
            make_shard((np.arange(5000 + i) * 7 + i) % 50257, name=f"{prefix}_train_{i:06d}.bin", folder=root / repo)
    return root


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def record_download(out_dir, filename: str, commit: str = HUB_COMMIT) -> None:
    """What hf_hub_download(local_dir=out_dir) records of a download: <out>/.cache/huggingface/download/<file>.metadata
    holding the commit, the etag and the time, a line each (huggingface_hub 0.23-2.x)."""
    meta = Path(out_dir) / ".cache" / "huggingface" / "download" / f"{filename}.metadata"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(f"{commit}\n{'e' * 64}\n{time.time()}\n")


class LocalFetch:
    """fetch(repo_id, filename, out_dir) like hf_hub_download(local_dir=out_dir): copy <hub>/<repo>/<file> and
    record the download as huggingface_hub does.

    `short`: filenames whose first fetch delivers only half the file (an interrupted transfer).
    `fail`: an exception to raise instead, after writing `partial` bytes under the final name.
    """

    def __init__(self, root: Path, short=(), fail: BaseException | None = None, partial: int = 0):
        self.root, self.short, self.fail, self.partial = root, set(short), fail, partial
        self.calls: list[tuple[str, str]] = []

    def __call__(self, repo_id, filename, out_dir):
        self.calls.append((repo_id, filename))
        src, dst = self.root / repo_id / filename, Path(out_dir) / filename
        if self.fail is not None:
            if self.partial:
                dst.write_bytes(src.read_bytes()[: self.partial])
            raise self.fail
        if filename in self.short:
            self.short.discard(filename)
            dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        else:
            shutil.copyfile(src, dst)
        record_download(out_dir, filename)
        return str(dst)


def test_file_names_per_variant():
    v, names = shard_filenames("10B", 3)
    assert v.repo_id == REPO and v.default_dir == "data/fineweb10B"
    assert names == ["fineweb_val_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin",
                     "fineweb_train_000003.bin"]
    v, names = shard_filenames("edu10B", 1)
    assert v.repo_id == "kjj0/finewebedu10B-gpt2" and names == ["finewebedu_val_000000.bin",
                                                                  "finewebedu_train_000001.bin"]
    assert shard_filenames("100B", 1028)[1][-1] == "fineweb_train_001028.bin"
    assert shard_filenames("10B", 0)[1] == ["fineweb_val_000000.bin"]
    for variant, n, frag in [("10B", 104, "1..103"), ("edu10B", 100, "1..99"), ("10B", -1, "0..103"),
                             ("5B", 1, "unknown FineWeb variant")]:
        with pytest.raises(SpeedrunError, match=frag):
            shard_filenames(variant, n)


def test_downloads_validates_and_reports(hub, tmp_path, capsys):
    fetch = LocalFetch(hub)
    out = tmp_path / "out"
    paths = download_fineweb("10B", 2, str(out), fetch=fetch)
    names = ["fineweb_val_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin"]
    assert paths == [out / n for n in names]
    assert fetch.calls == [(REPO, n) for n in names]
    for n in names:
        assert (out / n).read_bytes() == (hub / REPO / n).read_bytes()
    text = capsys.readouterr().out
    assert "[1/3] fineweb_val_000000.bin: 0.0 MB (1,000 tokens) downloaded" in text
    assert "fineweb_train_000003" not in text


def test_a_download_killed_mid_write_is_cleared_by_the_next(hub, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    proc, left = killed_mid_write(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    download_fineweb("10B", 1, str(out), fetch=LocalFetch(hub))
    assert f"note: removed {left[0]} (0.0 MiB), a download that a killed run left half-written" in capsys.readouterr().out
    assert not left[0].exists()


def test_valid_cached_files_are_skipped(hub, tmp_path, capsys):
    out = tmp_path / "out"
    download_fineweb("10B", 1, str(out), fetch=LocalFetch(hub))
    capsys.readouterr()
    fetch = LocalFetch(hub)
    download_fineweb("10B", 2, str(out), fetch=fetch)  # one more train shard: only that one is fetched
    assert fetch.calls == [(REPO, "fineweb_train_000002.bin")]
    text = capsys.readouterr().out
    assert text.count("ok (cached; hub commit 0123456)") == 2
    assert "fineweb_train_000002.bin: 0.0 MB (5,002 tokens) downloaded (hub commit 0123456)" in text


def test_a_cached_file_without_a_record_of_its_download_is_kept_and_named(hub, tmp_path, capsys):
    """A valid shard under a hub file's name that huggingface_hub did not download there (copied in, or changed after
    its download) is kept, not fetched, with a line that says it is not known to be the hub's."""
    out = tmp_path / "out"
    download_fineweb("10B", 2, str(out), fetch=LocalFetch(hub))
    (out / ".cache" / "huggingface" / "download" / "fineweb_train_000001.bin.metadata").unlink()
    later = time.time() + 5  # written after its record: huggingface_hub's own rule allows 1 s
    os.utime(out / "fineweb_train_000002.bin", (later, later))
    capsys.readouterr()
    fetch = LocalFetch(hub)
    download_fineweb("10B", 2, str(out), fetch=fetch)
    assert fetch.calls == []
    lines = capsys.readouterr().out.splitlines()
    assert "fineweb_val_000000.bin: 0.0 MB ok (cached; hub commit 0123456)" in lines[1]
    for line in lines[2:4]:
        assert line.endswith("ok (cached; no record of a hub download here: delete it to fetch the hub's)"), line
    (out / ".cache" / "huggingface" / "download" / "fineweb_val_000000.bin.metadata").write_text("not a record")
    download_fineweb("10B", 0, str(out), fetch=fetch)
    assert "no record of a hub download here" in capsys.readouterr().out


def test_short_local_file_is_refetched(hub, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    src = hub / REPO / "fineweb_val_000000.bin"
    (out / src.name).write_bytes(src.read_bytes()[:1500])  # an interrupted earlier copy under the final name
    fetch = LocalFetch(hub)
    download_fineweb("10B", 0, str(out), fetch=fetch)
    assert fetch.calls == [(REPO, src.name)]
    assert (out / src.name).read_bytes() == src.read_bytes()
    text = capsys.readouterr().out
    assert "invalid local file" in text and "truncated" in text and "refetched" in text


def test_interrupted_download_detected_then_refetched_next_run(hub, tmp_path):
    out = tmp_path / "out"
    name = "fineweb_train_000001.bin"
    with pytest.raises(ShardError) as info:  # the transfer stopped halfway: caught, the half file removed
        download_fineweb("10B", 1, str(out), fetch=LocalFetch(hub, short={name}))
    msg = str(info.value)
    assert "\n" not in msg and f"{REPO}/{name}" in msg and "truncated" in msg and "removed it" in msg
    assert not (out / name).exists()
    fetch = LocalFetch(hub)
    download_fineweb("10B", 1, str(out), fetch=fetch)  # run again: val cached, the train shard fetched whole
    assert fetch.calls == [(REPO, name)]
    np.testing.assert_array_equal(read_shard(out / name), read_shard(hub / REPO / name))


def test_corrupt_after_fetch_is_removed_with_an_error(hub, tmp_path):
    bad = hub / REPO / "fineweb_train_000001.bin"
    data = bytearray(bad.read_bytes())
    data[0:4] = b"\x00\x00\x00\x00"  # bad magic, right size
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(ShardError, match="bad magic") as info:
        download_fineweb("10B", 2, str(out), fetch=LocalFetch(hub))
    assert "\n" not in str(info.value) and bad.name in str(info.value)
    assert sorted(p.name for p in out.glob("*.bin")) == ["fineweb_val_000000.bin"]  # stopped there, bad one gone


def _offline_errors():
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError

    return [
        # what hf_hub_download raises when the hub cannot be reached and nothing is cached
        LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub and we cannot find "
                                "the requested files in the local cache.\nPlease check your connection."),
        httpx2.ConnectError("[Errno -2] Name or service not known"),  # what its metadata request raises
        ConnectionResetError(104, "Connection reset by peer"),
    ]


@pytest.mark.parametrize("which", range(3))
def test_unreachable_hub_is_one_line_and_leaves_nothing(hub, tmp_path, which):
    error = _offline_errors()[which]
    out = tmp_path / "out"
    # a half-written file under the final name, as a careless fetch might leave it
    fetch = LocalFetch(hub, fail=error, partial=3000)
    with pytest.raises(HubError) as info:
        download_fineweb("10B", 1, str(out), fetch=fetch)
    msg = str(info.value)
    assert isinstance(info.value, SpeedrunError)
    assert msg.startswith(f"cannot reach the Hugging Face hub to download {REPO}/fineweb_val_000000.bin (")
    assert msg.endswith("check the network or HF_ENDPOINT") and "\n" not in msg
    assert type(error).__name__ in msg
    assert not out.exists(), "a folder this call made and left empty is removed again"


def test_http_refusal_and_write_errors_are_named(hub, tmp_path):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    url = f"https://huggingface.co/datasets/{REPO}/resolve/main/fineweb_val_000000.bin"
    response = httpx2.Response(404, request=httpx2.Request("HEAD", url))
    with pytest.raises(HubError, match=r"refused .*fineweb_val_000000.bin \(HTTP 404") as info:
        download_fineweb("10B", 0, str(tmp_path / "a"),
                         fetch=LocalFetch(hub, fail=HfHubHTTPError("404", response=response)))
    assert "\n" not in str(info.value)
    with pytest.raises(HubError, match="cannot write .*No space left"):
        download_fineweb("10B", 0, str(tmp_path / "b"),
                         fetch=LocalFetch(hub, fail=OSError(28, "No space left on device")))


def test_dir_that_is_a_file_or_below_one_fails_before_any_download(hub, tmp_path):
    (tmp_path / "afile").write_text("x")
    for out, why in ((tmp_path / "afile", "exists and is not a folder"),
                     (tmp_path / "afile" / "sub", f"{tmp_path / 'afile'} is a file, not a folder")):
        fetch = LocalFetch(hub)
        with pytest.raises(SpeedrunError, match=f"^--dir {out}: {why}$"):
            download_fineweb("10B", 1, str(out), fetch=fetch)
        assert fetch.calls == []


def test_fetch_that_returns_another_path_and_default_dir(hub, tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    staging.mkdir()

    def elsewhere(repo_id, filename, out_dir):  # e.g. a fetch that returns a file in a cache folder
        dst = staging / filename
        shutil.copyfile(hub / repo_id / filename, dst)
        return dst

    monkeypatch.chdir(tmp_path)
    paths = download_fineweb("edu10B", 1, None, fetch=elsewhere)
    assert paths == [Path("data/finewebedu10B/finewebedu_val_000000.bin"),
                     Path("data/finewebedu10B/finewebedu_train_000001.bin")]
    for p in paths:
        assert p.read_bytes() == (staging / p.name).read_bytes()


def test_dir_that_is_a_file(tmp_path, hub):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SpeedrunError, match="not a folder"):
        download_fineweb("10B", 1, str(tmp_path / "f"), fetch=LocalFetch(hub))


def _hub_reachable() -> bool:
    import socket

    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError:
        return False
    return True


def test_cli_with_the_default_fetch_and_no_network(tmp_path):
    """The real huggingface_hub path on this offline machine: exit 2, one stderr line, no .bin left.

    Bounded by a 60 s subprocess timeout (no pytest-timeout here): past that the test skips instead of hanging.
    """
    if _hub_reachable():
        pytest.skip("huggingface.co resolves here; this test would download a 200 MB shard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["PYTHONPATH"] = str(REPO_DIR)  # this checkout, whatever the editable install points at
    cases = {"net": {}, "offline_mode": {"HF_HUB_OFFLINE": "1"}}
    procs = {}
    start = time.monotonic()
    for key, extra in cases.items():
        d = tmp_path / key
        procs[key] = (subprocess.Popen([sys.executable, "-m", "speedrun", "data", "fineweb", "--train-shards", "1",
                                        "--dir", str(d)], env={**env, **extra}, cwd=tmp_path, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE), d)
    results = {}
    for key, (p, d) in procs.items():
        try:
            out, err = p.communicate(timeout=max(1.0, 60 - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            for q, _ in procs.values():
                q.kill()
                q.communicate()
            pytest.skip("the offline error takes more than 60 s on this machine")
        results[key] = (p.returncode, out, err, d)
    for key, (code, out, err, d) in results.items():
        lines = err.strip().splitlines()
        assert code == 2, (key, out, err)
        assert len(lines) == 1 and "Traceback" not in err, (key, err)
        assert lines[0].startswith("speedrun: error: "), lines
        assert f"{REPO}/fineweb_val_000000.bin" in lines[0]
        assert not d.exists(), list(d.rglob("*"))  # nothing fetched: not even the folder stays
    assert "check the network or HF_ENDPOINT" in results["net"][2]
    assert "HF_HUB_OFFLINE is set" in results["offline_mode"][2]

