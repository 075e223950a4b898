"""`speedrun train` from the command line: dry-run reports, one-line errors with exit code 2, no stray logs.

The subprocess runs (`python -m speedrun ...`) are started together once per module, since each one spends
most of its time importing torch.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from speedrun.cli import main
from speedrun.recipe import load_recipe

HAS_GPU = torch.cuda.is_available()

# Parameter counts of record 21 (dry-run on the meta device).
R21_COUNTS = {"total": 275_598_388, "muon": 82_575_360, "embed": 154_389_504, "head": 38_633_472, "scalar": 52}


def expected_counts(r) -> dict[str, int]:
    """Parameter counts from the architecture of shared/spec/record21.md, for any recipe."""
    attn_layers = r.num_layers - len(set(r.no_attn_layers))
    hdim = r.num_heads * r.head_dim
    counts = {
        "embed": r.vocab_size * r.model_dim * (1 + r.value_embeds),  # token + value embeddings
        "head": r.padded_vocab * r.model_dim,
        # merged QKV (3 x dim x hdim) + output projection per attention layer; MLP in + out per layer
        "muon": attn_layers * 4 * r.model_dim * hdim + r.num_layers * 2 * r.model_dim * r.mlp_hidden,
        # lambdas (2 per block), value mix a, b (2 per attention), one skip weight per U-net pair
        "scalar": 2 * r.num_layers + 2 * attn_layers + r.num_layers // 2,
    }
    counts["total"] = sum(counts.values())
    return counts


def parse_report(out: str) -> dict:
    def grab(pattern):
        m = re.search(pattern, out, re.M)
        assert m, f"/{pattern}/ not in dry-run output:\n{out}"
        return int(m.group(1).replace(",", ""))

    first, rest = out.split("\n", 1)
    recipe_json = rest[: rest.index("\n}\n") + 2]
    return {
        "header": first,
        "recipe": json.loads(recipe_json),
        "total": grab(r"^parameters: ([\d,]+) in total"),
        "muon": grab(r"^  Muon \(block matrices\) +([\d,]+)  \("),
        "embed": grab(r"^  Adam embeddings \(token \+ value\) +([\d,]+)  \("),
        "head": grab(r"^  Adam head +([\d,]+)  \("),
        "scalar": grab(r"^  Adam scalars +([\d,]+)  \("),
        "tokens_per_step": grab(r"^tokens: ([\d,]+) per step"),
        "plan": out[out.index("device plan:\n"):],
    }


def assert_one_line_error(stderr: str, *fragments: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("speedrun: error: "), lines[0]
    assert "Traceback" not in stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------------------
# subprocesses, all launched at once

def _cases():
    cases = {
        "dry21": ["train", "--dry-run", "--recipe", "record21"],
        "nosuch": ["train", "--recipe", "nosuch"],
        "stepz": ["train", "--recipe", "tiny", "--set", "stepz=1"],
        "abc": ["train", "--recipe", "tiny", "--set", "steps=abc"],
    }
    if not HAS_GPU:  # on a GPU machine this would start a real run
        cases["nogpu"] = ["train", "--recipe", "record21"]
    return cases


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """{case: (CompletedProcess-like, cwd)} for every case, each run in its own empty folder."""
    tmp = tmp_path_factory.mktemp("cli")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    procs = {}
    for name, args in _cases().items():
        cwd = tmp / name
        cwd.mkdir()
        procs[name] = (subprocess.Popen([sys.executable, "-m", "speedrun", *args], cwd=cwd, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE), cwd)
    results = {}
    try:
        for name, (p, cwd) in procs.items():
            out, err = p.communicate(timeout=300)
            results[name] = (subprocess.CompletedProcess(p.args, p.returncode, out, err), cwd)
    finally:
        for p, _ in procs.values():
            if p.poll() is None:
                p.kill()
    return results


def test_dry_run_record21(cli):
    proc, cwd = cli["dry21"]
    assert proc.returncode == 1, proc.stderr  # the report, and exit 1: FineWeb is not downloaded here
    rep = parse_report(proc.stdout)
    assert rep["header"].startswith("recipe record21: ")
    assert rep["recipe"] == load_recipe("record21").to_dict()
    for key, value in R21_COUNTS.items():
        assert rep[key] == value, key
    assert "parameters: 275,598,388 in total" in proc.stdout
    assert re.search(r"Muon \(block matrices\) +82,575,360 ", proc.stdout)
    assert re.search(r"Adam embeddings \(token \+ value\) +154,389,504 ", proc.stdout)
    assert re.search(r"Adam head +38,633,472 ", proc.stdout)
    assert re.search(r"Adam scalars +52 ", proc.stdout)
    assert rep["tokens_per_step"] == 393_216
    assert "tokens: 393,216 per step, 695,992,320 over 1770 steps; validation 10,485,760 tokens" in proc.stdout
    plan = rep["plan"]
    assert "  device: cuda x 1 rank(s)" in plan
    assert "  batch: 393,216 tokens/step = 1 rank(s) x 8 accumulation step(s) x 49,152 tokens" in plan
    assert "  attention: FlexAttention block masks" in plan
    assert "  precision: bfloat16" in plan
    assert "  torch.compile: on" in plan
    if not HAS_GPU:
        assert "FP8" in plan and "no CUDA GPU is visible here" in plan
    assert not (cwd / "logs").exists(), "a dry run writes no log"
    # without FineWeb here the report ends saying so, with the command that gets it (and the exit code 1)
    assert proc.stdout.rstrip().splitlines()[-1].startswith("data: NOT READY: data/fineweb10B/fineweb_train_*.bin: "
                                                            "matches no shard files; get them with `speedrun data")


def test_dry_run_tiny(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cwd = tmp_path
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny"])
    assert rc == 0, err
    rep = parse_report(out)
    r = load_recipe("tiny")
    assert rep["recipe"] == r.to_dict()
    counts = expected_counts(r)
    for key, value in counts.items():
        assert rep[key] == value, key
    assert rep["tokens_per_step"] == 1024
    if not HAS_GPU:
        assert "  device: cpu x 1 rank(s)" in rep["plan"]
        assert "  attention: dense boolean mask + SDPA" in rep["plan"]
        assert "  head matmul: plain (no FP8)" in rep["plan"]
        assert "  torch.compile: off" in rep["plan"]
    assert out.rstrip().splitlines()[-1] == "data: ready: 1 train shard of 977,951 tokens, 1 val shard"
    assert not (cwd / "logs").exists()
    # the folders the run would write in are checked too (creating nothing): a file where a folder must be is said
    (cwd / "afile").write_text("x")
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", "--log-dir", "afile/logs"])
    assert rc == 1 and out.rstrip().splitlines()[-2:] == [
        "data: ready: 1 train shard of 977,951 tokens, 1 val shard",
        "outputs: NOT WRITABLE: --log-dir afile/logs: afile is a file, not a folder"]
    assert sorted(p.name for p in cwd.iterdir()) == ["afile"]
    # so are the metrics sinks' packages (wandb's login needs the network: the run checks it when it starts)
    monkeypatch.setattr("speedrun.metrics._installed", lambda module: False)  # neither installed
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", "--wandb", "proj", "--tensorboard", "tb"])
    assert rc == 1 and out.rstrip().splitlines()[-1] == (
        "metrics: NOT READY: --wandb needs the wandb package: pip install 'speedrun[wandb]'; --tensorboard needs the "
        "tensorboard package: pip install 'speedrun[tensorboard]'")
    monkeypatch.setattr("speedrun.metrics._installed", lambda module: True)  # both installed
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", "--wandb", "proj", "--tensorboard", "tb"])
    assert rc == 0 and out.rstrip().splitlines()[-1] == (
        "metrics: ready: wandb project proj (its login is checked when the run starts), TensorBoard under tb")
    assert sorted(p.name for p in cwd.iterdir()) == ["afile"]
    # every folder the run would write in, TensorBoard's too, each said
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", "--log-dir", "afile/l", "--checkpoint-dir",
                                  "afile/c", "--tensorboard", "afile/tb"])
    assert rc == 1 and out.rstrip().splitlines()[-4:-1] == [
        f"outputs: NOT WRITABLE: {flag} afile/{sub}: afile is a file, not a folder"
        for flag, sub in (("--log-dir", "l"), ("--checkpoint-dir", "c"), ("--tensorboard", "tb"))]
    # the compile cache's file too, in the report (it stopped the dry run before it, exit 2)
    (cwd / "afolder").mkdir()
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", "--compile-cache", "afile/x.cache"])
    assert rc == 1 and out.rstrip().splitlines()[-1] == (
        "outputs: NOT WRITABLE: --compile-cache afile/x.cache: afile is a file, not a folder") and not err
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", "--compile-cache", "afolder"])
    assert rc == 1 and out.rstrip().splitlines()[-1] == (
        "outputs: NOT WRITABLE: --compile-cache afolder: is a folder; give a file name, e.g. afolder/fast.cache")


@pytest.mark.parametrize("case, fragments", [
    ("nosuch", ["unknown recipe 'nosuch'"]),
    ("stepz", ["'stepz'", "did you mean steps"]),
    ("abc", ["steps='abc' is not a valid int"]),
])
def test_errors_exit_2_with_one_line(cli, case, fragments):
    proc, cwd = cli[case]
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr, *fragments)
    assert proc.stdout == ""
    assert not (cwd / "logs").exists(), "a run that fails before training must not leave a log"


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without a CUDA GPU")
def test_gpu_only_recipe_refuses_without_gpu(cli):
    proc, cwd = cli["nogpu"]
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr, "record21", "GPU-only", "--device cpu")
    assert proc.stdout == ""
    assert list(cwd.iterdir()) == [], "nothing (no logs folder) is created"


# ---------------------------------------------------------------------------------------------------------
# in process

def _main(capsys, args):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(autouse=True)
def _single_process_env(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)


def test_in_process_dry_run_matches_formula(capsys):
    args = ["--set", "num_layers=8", "--set", "window_pattern=LSSLLSSL", "--set", "no_attn_layers=[]",
            "--set", "value_embeds=1", "--set", "mlp_hidden=384"]
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", *args])
    assert rc == 0, err
    rep = parse_report(out)
    r = load_recipe("tiny", [a for a in args if a != "--set"])
    assert rep["recipe"] == r.to_dict()
    for key, value in expected_counts(r).items():
        assert rep[key] == value, key


def test_main_hands_the_callers_sigterm_handler_back(capsys, monkeypatch):
    import signal

    import speedrun.cli as cli
    from speedrun.errors import _raise_terminated
    during = []
    monkeypatch.setattr(cli, "cmd_records", lambda args: during.append(signal.getsignal(signal.SIGTERM)) or 0)
    mine = lambda signum, frame: None
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["records"]) == 0
        assert during == [_raise_terminated]  # the command ran under the CLI's handler
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_formula_matches_record21_numbers():
    assert expected_counts(load_recipe("record21")) == R21_COUNTS


def test_in_process_dry_run_toml_path(capsys, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "tiny"\nsteps = 7\n')
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", str(path)])
    assert rc == 0, err
    assert out.startswith("recipe mine: (no description: a recipe file may set one)\n")
    assert "tokens: 1,024 per step, 7,168 over 7 steps" in out


@pytest.mark.parametrize("world_size, accum", [(2, 4), (4, 2), (8, 1)])
def test_dry_run_world_size_from_env(capsys, monkeypatch, world_size, accum):
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "record21"])
    assert rc == 1 and out.rstrip().splitlines()[-1].startswith("data: NOT READY: "), err  # no FineWeb here
    assert f"device: cuda x {world_size} rank(s)" in out
    assert f"batch: 393,216 tokens/step = {world_size} rank(s) x {accum} accumulation step(s) x 49,152 tokens" in out


def test_dry_run_names_an_empty_data_setting(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "tiny", "--set", "train_files="])
    assert rc == 1 and out.rstrip().splitlines()[-1] == ('data: NOT READY: train_files is empty: give a shard file, '
                                                         'a folder, a glob or "demo"')


def test_dry_run_world_size_that_does_not_divide(capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    rc, out, err = _main(capsys, ["train", "--dry-run", "--recipe", "record21"])
    assert rc == 2
    assert_one_line_error(err, "world size 3")


@pytest.mark.parametrize("args, fragments", [
    (["--recipe", "nosuch"], ["unknown recipe 'nosuch'"]),
    (["--recipe", "tiyn"], ["unknown recipe 'tiyn'", "did you mean tiny?"]),
    (["--recipe", "tiny", "--set", "stepz=1"], ["did you mean steps"]),
    (["--recipe", "tiny", "--set", "steps=abc"], ["--set steps"]),
    (["--recipe", "tiny", "--set", "steps"], ["expected key=value"]),
    (["--recipe", "tiny", "--set", "fp8_head=1"], ["fp8_head=1 is not a valid bool"]),
    (["--recipe", "tiny", "--set", "seq_len=1000", "--dry-run"], ["seq_len=1000 must be a multiple"]),
])
def test_in_process_errors(capsys, tmp_path, args, fragments):
    rc, out, err = _main(capsys, ["train", *args, "--log-dir", str(tmp_path / "logs")])
    assert rc == 2
    assert_one_line_error(err, *fragments)
    assert out == ""
    assert not (tmp_path / "logs").exists()


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without a CUDA GPU")
def test_in_process_no_gpu(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _main(capsys, ["train", "--recipe", "record21"])
    assert rc == 2
    assert_one_line_error(err, "GPU-only")
    rc, out, err = _main(capsys, ["train", "--recipe", "tiny", "--device", "cuda"])
    assert rc == 2
    assert_one_line_error(err, "no CUDA GPU is visible", "--device cpu")
    assert list(tmp_path.iterdir()) == []


def _data_error(capsys, tmp_path, *sets, expect_rc=2):
    args = ["train", "--recipe", "tiny", "--set", "steps=1", "--set", "warmup_steps=0",
            "--log-dir", str(tmp_path / "logs")]
    for s in sets:
        args += ["--set", s]
    rc, out, err = _main(capsys, args)
    assert rc == expect_rc, (out, err)
    if expect_rc == 2:
        assert not (tmp_path / "logs").exists(), "the data checks run before the run log is created"
    return err


def test_missing_train_glob_default_log_dir(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _main(capsys, ["train", "--recipe", "tiny", "--set", "steps=1", "--set",
                                  f"train_files={tmp_path / 'nowhere' / 'train_*.bin'}"])
    assert rc == 2 and out == ""
    assert_one_line_error(err, "nowhere", "matches no shard files")
    assert list(tmp_path.iterdir()) == [], "no logs folder for a run that failed its data check"


def test_missing_fineweb_shards_say_how_to_get_enough(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # record21: 1770 steps of 393,216 tokens; a 100M-token FineWeb shard holds 254 of them
    for sets, shards in (([], 7), (["--set", "batch_tokens=49152"], 1)):
        rc, out, err = _main(capsys, ["train", "--recipe", "record21", "--device", "cpu", *sets])
        assert rc == 2 and out == ""
        assert_one_line_error(err, "data/fineweb10B/fineweb_train_*.bin: matches no shard files; get them with "
                                   f"`speedrun data fineweb --train-shards {shards}`")
    assert list(tmp_path.iterdir()) == []


def test_train_files_too_short_for_the_steps(capsys, tmp_path):
    from speedrun.data.demo import DEMO_DIR
    from speedrun.data.shards import read_shard, write_shard
    write_shard(tmp_path / "short_train.bin", np.array(read_shard(DEMO_DIR / "demo_train_000000.bin")[:3_500]))
    # tiny: 1,024 tokens a step, so 3,500 tokens hold 3 steps
    err = _data_error(capsys, tmp_path, f"train_files={tmp_path / 'short_train.bin'}", "steps=5",
                      "train_loop=false")
    assert err.strip() == (f"speedrun: error: {tmp_path / 'short_train.bin'}: the train files hold 3 steps of 1,024 "
                           f"tokens, the run needs 5; add shards or set train_loop = true")
    _data_error(capsys, tmp_path, f"train_files={tmp_path / 'short_train.bin'}", "steps=3", "train_loop=false",
                "val_every=0", "val_tokens=2048", "sample_tokens=0", expect_rc=0)  # 3 steps fit (the rest: speed)


def test_missing_train_files_no_log(capsys, tmp_path):
    err = _data_error(capsys, tmp_path, f"train_files={tmp_path / 'missing.bin'}")
    assert_one_line_error(err, str(tmp_path / "missing.bin"), "no such file")


def test_corrupt_train_shard_no_log(capsys, tmp_path, make_shard):
    make_shard(np.arange(5000), name="train_000000.bin", folder=tmp_path / "data")
    (tmp_path / "data" / "train_000001.bin").write_bytes(b"\x00" * 2000)
    err = _data_error(capsys, tmp_path, f"train_files={tmp_path / 'data' / 'train_*.bin'}")
    assert_one_line_error(err, "train_000001.bin", "bad magic")


def test_train_shard_with_token_ids_beyond_the_vocabulary_no_log(capsys, tmp_path, make_shard):
    """A valid header over ids >= 50257 (another tokenizer's shard): refused before any work, not an IndexError."""
    tokens = np.arange(5000) % 50257
    tokens[4321] = 60000
    path = make_shard(tokens, name="train_000000.bin")
    err = _data_error(capsys, tmp_path, f"train_files={path}")
    assert_one_line_error(err, "train_000000.bin", "token id 60000 at position 4,321 is >= the vocabulary size 50257")


def test_negative_learning_rate_is_refused(capsys):
    rc, out, err = _main(capsys, ["train", "--recipe", "tiny", "--set", "muon_lr=-1", "--dry-run"])
    assert rc == 2
    assert_one_line_error(err, "muon_lr=-1.0 must be positive")


def test_train_shards_smaller_than_a_batch_no_log(capsys, tmp_path, make_shard):
    path = make_shard(np.arange(1024), name="train_000000.bin")  # tiny's batch is 1024: needs 1025
    err = _data_error(capsys, tmp_path, f"train_files={path}")
    assert_one_line_error(err, "no shard holds a whole train batch of 1,024 tokens")


def test_val_too_small_no_log(capsys, tmp_path, make_shard):
    path = make_shard(np.arange(5000), name="val_000000.bin")  # tiny wants 8,192 val tokens
    err = _data_error(capsys, tmp_path, f"val_files={path}")
    assert_one_line_error(err, "val_000000.bin", "8,192", "val_tokens")


def test_val_tokens_not_divisible_is_a_one_line_error(capsys, tmp_path):
    err = _data_error(capsys, tmp_path, "val_tokens=1000")
    assert_one_line_error(err, "val_tokens=1000")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "required: COMMAND", "speedrun --help")


@pytest.mark.parametrize("argv, stray, help_of", [
    (["data", "fineweb", "--out", "x"], "--out x", "speedrun data fineweb --help"),
    (["train", "--stepz", "3"], "--stepz 3", "speedrun train --help"),
    (["stats", "logs", "--x"], "--x", "speedrun stats --help"),
])
def test_a_stray_argument_names_its_own_command_help(capsys, argv, stray, help_of):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, f"unrecognized arguments: {stray}", help_of)


# --- the quick start: a default train leaves a model that sample and eval take with no extra flags ---------------------
def test_default_train_then_sample_and_eval_with_no_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the defaults write logs/ and checkpoints/ in the working folder
    # a quarter of tiny's val tokens: each of the four validations below (the run's, three evals) costs seconds
    assert main(["train", "--set", "steps=3", "--set", "val_every=0", "--set", "sample_tokens=0",
                 "--set", "val_tokens=2048"]) == 0
    out = capsys.readouterr().out
    (final,) = list((tmp_path / "checkpoints").iterdir())
    (log,) = (tmp_path / "logs").iterdir()
    run_id = log.stem.rsplit("_", 1)[1]  # <time>_<recipe>_<run id>: the model is named after the run that wrote it
    assert re.fullmatch(r"[0-9a-f]{8}", run_id) and final.name == f"ckpt_tiny_{run_id}_step000003.pt"
    assert f"model: {os.path.join('checkpoints', final.name)}" in out
    from speedrun.checkpoint import load

    ckpt = load(final)
    assert ckpt.complete and ckpt.optimizers == [] and ckpt.model  # weights only: small, for sampling and evals
    last_val = ckpt.val_losses[-1][1]
    assert main(["sample", "latest", "--tokens", "5", "--temperature", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip()
    assert captured.err == f"checkpoint: {os.path.join('checkpoints', final.name)} (step 3)\n"  # which file `latest` was
    # no checkpoint argument at all means latest, as after README's first command
    assert main(["sample", "--tokens", "5", "--temperature", "0"]) == 0
    assert capsys.readouterr() == captured
    named_latest = os.path.join("checkpoints", final.name)
    for spec, named in (([str(final)], final), (["latest"], named_latest), ([], named_latest)):
        assert main(["eval", *spec]) == 0
        out = capsys.readouterr().out
        assert f"{last_val:.4f}" in out  # the recipe's own val files, the run's own final loss
        assert f"(checkpoint {named}, step 3 of 3)" in out
