"""Command-line checks before any work: option ranges (one line, exit code 2, nothing written), --help with defaults,
--version, --prompt-file, `eval` on the checkpoint's own val files, --nproc against the recipe and the GPUs, and the
final `done:` line of `speedrun train`."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import checkpoint_at

import speedrun
import speedrun.cli as cli
import speedrun.train_command as train_command
from speedrun.cli import build_parser, main
from speedrun.data.demo import DEMO_DIR
from speedrun.launch import check_nproc
from speedrun.recipe import load_recipe

# a 2-step run of a narrow tiny model on the demo corpus: seconds on a CPU
SMALL = ["model_dim=64", "head_dim=32", "num_heads=2", "mlp_hidden=128", "seq_len=256", "val_seq_len=256",
         "window_ramp_tokens=256", "batch_tokens=256", "steps=2", "val_every=0", "warmup_steps=0", "val_tokens=512",
         "sample_tokens=0"]


def sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def one_line(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speedrun: error: "), err
    assert "Traceback" not in err
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


@pytest.fixture(autouse=True)
def _single_process_env(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint path, stdout) of `speedrun train` with val_every=0 and --save-every 2."""
    tmp = tmp_path_factory.mktemp("run")
    with contextlib.redirect_stdout(io.StringIO()) as out:  # capsys is per test
        rc = main(["train", "--recipe", "tiny", "--device", "cpu", *sets(*SMALL), "--save-every", "2",
                   "--checkpoint-dir", str(tmp), "--log-dir", str(tmp / "logs")])
    assert rc == 0
    return checkpoint_at(tmp, 2), out.getvalue()


# --- option ranges: argparse refuses them, before anything is read or written --------------------------------------
CKPT = "no_such_ckpt.pt"  # never opened: the options are refused first


@pytest.mark.parametrize("args, fragments", [
    (["sample", CKPT, "--top-k", "-3"], ["--top-k", "-3 must be >= 0"]),
    (["sample", CKPT, "--top-k", "x"], ["--top-k", "'x' is not an integer"]),
    (["sample", CKPT, "--temperature", "-1"], ["--temperature", "must be a finite number >= 0 (0: greedy)"]),
    (["sample", CKPT, "--temperature", "inf"], ["--temperature", "'inf' must be a finite number >= 0 (0: greedy)"]),
    (["sample", CKPT, "--temperature", "nan"], ["--temperature", "'nan'"]),
    (["sample", CKPT, "--tokens", "0"], ["--tokens", "0 must be >= 1"]),
    (["sample", CKPT, "--num-samples", "0"], ["--num-samples", "0 must be >= 1"]),
    (["sample", CKPT, "--device", "tpu"], ["--device", "'tpu' is not cpu, cuda or cuda:N"]),
    (["sample", CKPT, "--device", "cuda:99"], ["--device", "cuda:99: "]),
    (["sample", CKPT, "--prompt-file", "absent.txt"], ["--prompt-file", "absent.txt: cannot read it"]),
    (["eval", CKPT, "--val-tokens", "0"], ["--val-tokens", "0 must be >= 1"]),
    (["eval", CKPT, "--device", "gpu"], ["--device", "'gpu'"]),
    (["eval", "hellaswag", CKPT, "--limit", "0"], ["--limit", "0 must be >= 1"]),
    (["train", "--nproc", "0"], ["--nproc", "0 must be >= 1"]),
    (["train", "--nproc", "-1"], ["--nproc", "-1 must be >= 1"]),
    (["train", "--save-every", "-1"], ["--save-every", "-1 must be >= 0"]),
    (["data", "tokenize", "a.txt", "--out", "o", "--val-tokens", "-1"], ["--val-tokens", "-1 must be >= 0"]),
    (["data", "inspect", "data", "--preview", "-5"], ["--preview", "-5 must be >= 0"]),
    # one wording for every integer option's range and type (tokenize's and fineweb's said it three other ways)
    (["data", "tokenize", "a.txt", "--out", "o", "--workers", "-1"], ["argument --workers", "-1 must be >= 0"]),
    (["data", "tokenize", "a.txt", "--out", "o", "--shard-tokens", "0"], ["argument --shard-tokens", "0 must be >= 1"]),
    (["data", "tokenize", "a.txt", "--out", "o", "--shard-tokens", "1e6"], ["--shard-tokens", "'1e6' is not an integer"]),
    (["data", "fineweb", "--train-shards", "x"], ["--train-shards", "'x' is not an integer"]),
    (["sample", CKPT, "--seed", "x"], ["--seed", "'x' is not an integer"]),
    ([], ["required: COMMAND", "speedrun --help"]),
    (["data"], ["required: {fineweb,tokenize,inspect}", "speedrun data --help"]),
])
def test_bad_options_one_line_exit_2_nothing_written(capsys, tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    one_line(err, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_cuda_device_index_beyond_the_visible_gpus(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SystemExit):
        main(["sample", CKPT, "--device", "cuda:2"])
    one_line(capsys.readouterr().err, "cuda:2: only 2 CUDA GPU(s) are visible (cuda:0..cuda:1)")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(SystemExit):
        main(["sample", CKPT, "--device", "cuda"])
    one_line(capsys.readouterr().err, "cuda: no CUDA GPU is visible; use --device cpu")
    assert build_parser().parse_args(["sample", CKPT, "--device", "cpu"]).device == "cpu"


def test_bad_top_k_from_the_shell_is_one_line(tmp_path):
    """The reported traceback, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "speedrun", "sample", CKPT, "--top-k", "-3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    one_line(proc.stderr, "argument --top-k: -3 must be >= 0")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, fragment", [(b"The \xff cat", "not UTF-8 text (byte 0xff at offset 4)"),
                                               (None, "cannot read it")])
def test_bad_prompt_file(capsys, tmp_path, monkeypatch, content, fragment):
    path = tmp_path / "prompt.txt"
    path.write_bytes(content) if content is not None else path.mkdir()  # a folder is not a readable file
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(SystemExit) as info:
        main(["sample", CKPT, "--prompt-file", str(path)])
    assert info.value.code == 2
    one_line(capsys.readouterr().err, f"--prompt-file: {path}: {fragment}")
    assert list((tmp_path / "run").iterdir()) == []


def test_prompt_and_prompt_file_are_exclusive(capsys, tmp_path):
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(SystemExit) as info:
        main(["sample", CKPT, "--prompt", "a", "--prompt-file", str(tmp_path / "p.txt")])
    assert info.value.code == 2
    one_line(capsys.readouterr().err, "--prompt-file", "not allowed with argument --prompt")


# --- help and version -------------------------------------------------------------------------------------------
def _parsers(parser):
    """Every parser under `parser` (subcommands, data subcommands) with its name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from _parsers(sub)


def test_every_option_has_help_and_defaults_show(capsys):
    for name, sub in _parsers(build_parser()):
        for action in sub._actions:
            what = f"{name} {action.option_strings or action.dest}"
            assert action.help or isinstance(action, argparse._SubParsersAction), f"{what}: no help text"
    with pytest.raises(SystemExit) as info:
        main(["sample", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0
    for text in ("--prompt-file FILE", "(0: greedy) (default: 0.8)", "(0: all) (default: 50)", "(default: 100)",
                 "cpu, cuda or cuda:N"):
        assert text in out, text
    assert "(default: None)" not in out and "(default: )" not in out
    with pytest.raises(SystemExit):
        main(["data", "tokenize", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert ("tokens of whole documents for the val shard (default: 10% of the tokens or 10,485,760, whichever is "
            "less; 0: no val shard)") in out


def test_every_help_says_each_default_once():
    for name, sub in _parsers(build_parser()):
        for line in " ".join(sub.format_help().split()).split(" -"):
            assert line.count("(default:") <= 1, f"{name}: -{line}"


def test_version(capsys, monkeypatch):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"speedrun {importlib.metadata.version('speedrun')}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"speedrun {speedrun.__version__}\n"


# --- data tokenize: the function's own default val shard ------------------------------------------------------------
def test_tokenize_passes_val_tokens_none_by_default(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("speedrun.data.tokenize.tokenize_files", lambda *a, **k: calls.append(k))
    assert main(["data", "tokenize", "a.txt", "--out", str(tmp_path)]) == 0
    assert main(["data", "tokenize", "a.txt", "--out", str(tmp_path), "--val-tokens", "0"]) == 0
    assert [c["val_tokens"] for c in calls] == [None, 0]


# --- train: --nproc against the recipe's batches and the GPUs, before torchrun starts --------------------------------
@pytest.fixture
def launches(monkeypatch):
    calls = []
    monkeypatch.setattr(train_command, "launch_torchrun", lambda nproc, argv: calls.append((nproc, argv)) or 0)
    return calls


@pytest.mark.parametrize("nproc, fixes", [(2, ["batch_tokens=2048"]), (3, ["batch_tokens=3072", "val_tokens=6144"])])
def test_nproc_that_does_not_divide_the_batch_suggests_a_fix_that_works(capsys, tmp_path, monkeypatch, launches,
                                                                        nproc, fixes):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--recipe", "tiny", "--device", "cpu", "--nproc", str(nproc)]
    assert main(args) == 2
    out, err = capsys.readouterr()
    line = one_line(err, f"--nproc {nproc}: batch_tokens=1024 is not divisible by world size {nproc}",
                    "(or use --nproc 1)")
    suggested = re.findall(r"--set (\S+)", line)
    assert suggested == fixes and out == "" and launches == [] and list(tmp_path.iterdir()) == []
    r = load_recipe("tiny", suggested)
    r.grad_accum_steps(nproc), r.val_batches(nproc)  # the suggestion passes the checks the ranks make
    assert main(args + sets(*suggested)) == 0
    assert launches == [(nproc, ["train", "--recipe", "tiny", "--device", "cpu", *sets(*suggested)])]


@pytest.mark.parametrize("extra, fragment", [
    (sets("train_files=nowhere.bin"), "nowhere.bin: no such file or folder"),
    (sets("train_loop=false", "steps=100000"), "the train files hold 477 steps of 2,048 tokens, the run needs 100,000"),
    (["--log-dir", "taken"], "--log-dir taken: exists and is not a folder"),
    (["--checkpoint-dir", "taken/sub"], "--checkpoint-dir taken/sub: taken is a file, not a folder")])
def test_what_every_rank_would_refuse_stops_before_torchrun(capsys, tmp_path, monkeypatch, launches, extra, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("")
    args = ["train", "--recipe", "tiny", "--device", "cpu", "--nproc", "2", *sets("batch_tokens=2048")]
    assert main(args + extra) == 2
    one_line(capsys.readouterr().err, fragment)
    assert launches == [] and [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_resumed_run_is_told_an_nproc_that_fits():
    r = load_recipe("tiny", ["batch_tokens=2048", "val_tokens=4096"])
    check_nproc(r, 2, "cpu", resumed=True)
    with pytest.raises(cli.SpeedrunError, match=r"keeps its recipe: use --nproc 2$"):
        check_nproc(r, 4, "cpu", resumed=True)


@pytest.mark.parametrize("gpus, fragment", [(0, "no CUDA GPU is visible; use --device cpu"),
                                            (2, "only 2 GPU(s) are visible; use --nproc 2")])
def test_nproc_beyond_the_visible_gpus(capsys, tmp_path, monkeypatch, launches, gpus, fragment):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    assert main(["train", "--recipe", "record21", "--nproc", "4"]) == 2
    one_line(capsys.readouterr().err, "--nproc 4: recipe record21 runs on CUDA and", fragment)
    assert launches == [] and list(tmp_path.iterdir()) == []


# --- train: the done line ---------------------------------------------------------------------------------------
def test_done_line_without_step_0_validation_shows_one_loss(trained):
    _, out = trained
    (line,) = [l for l in out.splitlines() if l.startswith("done: ")]
    assert re.fullmatch(r"done: val_loss \d+\.\d{4} in \d+\.\ds of training; log \S+; model: \S+", line), line


@pytest.mark.parametrize("val_losses, shown", [([(2, 9.4258)], "val_loss 9.4258 in"),
                                               ([(0, 10.83), (1, 9.9), (2, 9.4258)], "val_loss 10.8300 -> 9.4258 in")])
def test_done_line(capsys, monkeypatch, val_losses, shown):
    result = SimpleNamespace(val_losses=val_losses, training_time_ms=1234.0, log_path="logs/run.txt", model=None,
                             checkpoint_path=None)
    monkeypatch.setattr("speedrun.train.run", lambda *a, **k: result)
    assert main(["train", "--recipe", "tiny", "--device", "cpu", "--set", "sample_tokens=0"]) == 0
    assert capsys.readouterr().out == f"done: {shown} 1.2s of training; log logs/run.txt\n"


# --- sample --prompt-file, eval on the checkpoint's own val files ---------------------------------------------------
def test_prompt_file_gives_the_same_text_as_prompt(trained, capsys, tmp_path):
    path, _ = trained
    (tmp_path / "p.txt").write_text("The river ü\n", encoding="utf-8")  # the final newline is dropped
    common = ["sample", str(path), "--tokens", "5", "--temperature", "0", "--device", "cpu"]
    assert main(common + ["--prompt-file", str(tmp_path / "p.txt")]) == 0
    from_file = capsys.readouterr().out
    assert main(common + ["--prompt", "The river ü"]) == 0
    assert from_file == capsys.readouterr().out and from_file.startswith("The river ü")


def test_eval_defaults_to_the_checkpoint_recipes_val_files(trained, capsys):
    path, _ = trained
    demo_val = DEMO_DIR / "demo_val_000000.bin"
    assert main(["eval", str(path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"val files: {demo_val} (the checkpoint recipe's val_files 'demo')\n" in out
    loss = re.search(r"val_loss (\S+) over 512 tokens of 1 file", out)[1]
    assert main(["eval", str(path), "--val", "demo", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"val files: {demo_val}\n") and f"val_loss {loss} over 512 tokens" in out


def test_eval_errors(trained, capsys, tmp_path, monkeypatch):
    path, _ = trained
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(path), "--val", "nowhere/*.bin", "--device", "cpu"]) == 2
    one_line(capsys.readouterr().err, "nowhere/*.bin: matches no shard files")
    assert main(["eval", str(path), str(path)]) == 2
    one_line(capsys.readouterr().err, "one checkpoint at a time")
    assert main(["eval", str(path), "--val-tokens", "100", "--device", "cpu"]) == 2
    one_line(capsys.readouterr().err, "--val-tokens 100 must be a positive multiple")
    assert main(["eval", str(path), "--data", "hs.jsonl", "--limit", "5"]) == 2
    one_line(capsys.readouterr().err, "--data and --limit are for `speedrun eval hellaswag`, not this one")
    assert main(["eval", "hellaswag", str(path), "--val", "demo"]) == 2
    one_line(capsys.readouterr().err, "--val is for val-loss eval (`speedrun eval [CHECKPOINT]`), not this one")
    assert list(tmp_path.iterdir()) == []


def test_more_cpu_ranks_than_cores_get_a_note(capsys, tmp_path, monkeypatch, launches):
    monkeypatch.chdir(tmp_path)
    r = load_recipe("tiny", ["batch_tokens=2048", "val_tokens=4096"])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert check_nproc(r, 2, "cpu") == []
    note = ("--nproc 4 on 2 CPU core(s): the ranks share cores, so the run is slower than with --nproc 2 (the same "
            "tokens and steps; on a CPU the losses match another rank count's at the same thread count: each rank "
            "runs OMP_NUM_THREADS threads)")
    r4 = load_recipe("tiny", ["batch_tokens=4096", "val_tokens=8192"])
    assert check_nproc(r4, 4, "cpu") == [note]
    args = ["train", "--recipe", "tiny", "--device", "cpu", "--nproc", "4", *sets("batch_tokens=4096")]
    assert main(args) == 0 and capsys.readouterr().err == f"note: {note}\n"  # the launcher says it
    assert main(args + ["--dry-run"]) == 0 and f"\n  note: {note}\n" in capsys.readouterr().out  # the plan says it


# --- train --dry-run --nproc N: the report for N ranks, in this process (no torchrun) ---------------------------------
@pytest.fixture
def no_torchrun(monkeypatch):
    def launch(nproc, argv):
        pytest.fail(f"a dry run started torchrun: {nproc} ranks of {argv}")
    monkeypatch.setattr(train_command, "launch_torchrun", launch)


DRY2 = ["train", "--recipe", "tiny", "--device", "cpu", "--nproc", "2", *sets("steps=4", "batch_tokens=2048"),
        "--dry-run"]


def test_dry_run_under_nproc_reports_n_ranks(capsys, tmp_path, monkeypatch, no_torchrun):
    monkeypatch.chdir(tmp_path)
    assert main(DRY2) == 0
    out, err = capsys.readouterr()
    assert out.startswith("recipe tiny: ") and "\n  device: cpu x 2 rank(s)\n" in out and err == ""
    assert "\n  batch: 2,048 tokens/step = 2 rank(s) x 1 accumulation step(s) x 1,024 tokens\n" in out
    assert out.splitlines()[-1] == "data: ready: 1 train shard of 977,951 tokens, 1 val shard"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, last", [
    (sets("val_tokens=1048576"), "data: NOT READY: {demo_val}: the validation files end before 1,048,576 tokens "
                                 "(rows of 2,048); lower val_tokens"),
    (["--log-dir", "afile/sub"], "outputs: NOT WRITABLE: --log-dir afile/sub: afile is a file, not a folder")])
def test_dry_run_under_nproc_not_ready(capsys, tmp_path, monkeypatch, no_torchrun, extra, last):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    assert main(DRY2 + extra) == 1
    out, err = capsys.readouterr()
    assert "\n  device: cpu x 2 rank(s)\n" in out and err == ""  # the whole report, then why it is not ready
    assert out.splitlines()[-1] == last.format(demo_val=DEMO_DIR / "demo_val_000000.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_dry_run_under_torchrun_by_hand_leaves_the_answer_to_rank_0(capsys, tmp_path, monkeypatch, rank):
    """`torchrun --nproc-per-node 2 -m speedrun train --dry-run` where the data is not ready: rank 1 exited 1 at once
    and torchrun killed rank 0 before its report. Rank 1 now exits 0 silently; rank 0 reports and exits 1."""
    monkeypatch.chdir(tmp_path)
    for k, v in {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank)}.items():
        monkeypatch.setenv(k, v)
    argv = [a for a in DRY2 if a not in ("--nproc", "2")]
    assert main(argv + sets("val_tokens=1048576")) == (1 if rank == 0 else 0)
    out, err = capsys.readouterr()
    if rank:
        assert out == err == ""
    else:
        assert "\n  device: cpu x 2 rank(s)\n" in out and out.splitlines()[-1].startswith("data: NOT READY: ")


def test_dry_run_refuses_an_nproc_the_batch_cannot_take(capsys, tmp_path, monkeypatch, no_torchrun):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--recipe", "tiny", "--device", "cpu", "--nproc", "3", "--dry-run"]) == 2
    out, err = capsys.readouterr()
    one_line(err, "--nproc 3: batch_tokens=1024 is not divisible by world size 3", "(or use --nproc 1)")
    assert out == ""


@pytest.mark.parametrize("gpus, note", [
    (0, "no CUDA GPU is visible here: this is the plan on a CUDA GPU (training here would refuse)"),
    (2, "only 2 GPU(s) are visible here: this is the plan on 4 GPUs (training here would refuse; use --nproc 2)")])
def test_dry_run_plans_more_gpu_ranks_than_are_visible(capsys, tmp_path, monkeypatch, no_torchrun, gpus, note):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    assert main(["train", "--recipe", "record21", "--nproc", "4", "--dry-run"]) == 1  # no FineWeb here
    out = capsys.readouterr().out
    assert "\n  device: cuda x 4 rank(s)" in out and f"\n  note: {note}\n" in out
    assert "\n  batch: 393,216 tokens/step = 4 rank(s) x 2 accumulation step(s) x 49,152 tokens\n" in out
    assert out.splitlines()[-1].startswith("data: NOT READY: data/fineweb10B/fineweb_train_*.bin: matches no shard")


@pytest.mark.parametrize("args, fragment", [
    (["train", "--keep-last", "2"], "--keep-last keeps the newest periodic checkpoints: give --save-every N too"),
    (["train", "--no-final-checkpoint", "--save-every", "5"], "--no-final-checkpoint is for runs without --save-every"),
    (["train", "--print-every", "0"], "argument --print-every: 0 must be >= 1"),
    (["train", "--resume", "", "--dry-run"], "--resume: an empty path; give a checkpoint, a folder or latest"),
    (["train", "--wandb", " ", "--dry-run"], "--wandb: an empty project name"),
    (["train", "--tensorboard", "", "--dry-run"], "--tensorboard: an empty path; give a folder"),
    (["records", "--command", "x"], "--command describes a new record: give --new NAME LOG... too"),
    (["records", "--device", "cpu", "--notes", "n"], "--device and --notes describe a new record"),
])
def test_options_that_would_do_nothing_are_refused(args, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    one_line(capsys.readouterr().err, fragment)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_output_to_a_full_device_is_one_line():
    """`speedrun ... > /dev/full` (a full disk under a redirected stdout): one line and exit 1, not a traceback."""
    shard = Path(DEMO_DIR) / "demo_val_000000.bin"
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "speedrun", "data", "inspect", str(shard)], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr == "speedrun: error: writing the output: No space left on device\n"


@pytest.mark.parametrize("rank, said", [(None, "speedrun: interrupted\n"), ("0", "speedrun: interrupted\n"), ("1", "")])
def test_ctrl_c_is_said_once_not_once_a_rank(rank, said, monkeypatch, capsys):
    """Under torchrun every rank gets the terminal's Ctrl-C: rank 0 says it."""
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_stats", interrupted)
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    assert main(["stats"]) == 130
    assert capsys.readouterr().err == said
