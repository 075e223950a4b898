"""HellaSwag accuracy by completion scoring (the "acc_norm"-style method of GPT-2 evals such as llm.c's).

Each of an item's four endings is scored as the mean cross-entropy of its tokens given <|endoftext|> + context (the
ending tokenised with its leading space, as it follows the context in running text); the lowest is the answer. The
context is fed once through a KV cache and each ending continues from its own copy. Data: the official validation
JSON-lines file, downloaded once into ~/.cache/speedrun/ (or $XDG_CACHE_HOME/speedrun/), or a local file of that form.
"""

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from speedrun.checkpoint import Checkpoint, load, resolve
from speedrun.data.tokenizer import EOT, gpt2
from speedrun.errors import SpeedrunError
from speedrun.evals.sample import final_window, load_on
from speedrun.files import write_atomic
from speedrun.model.decoding import KVCache
from speedrun.model.gpt import GPT

URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"


class HellaSwagError(SpeedrunError, ValueError):
    """No data (offline, bad file). One line naming the URL or the file."""


def download(url: str = URL, dest: Path | None = None, timeout: float = 60) -> Path:
    """The official validation file, fetched once (written to a temporary file, then renamed into place)."""
    dest = dest or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "speedrun/hellaswag_val.jsonl"
    if dest.is_file():
        return dest
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            write_atomic(dest, lambda f: shutil.copyfileobj(response, f, 1 << 20))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        why = getattr(e, "reason", None) or e
        raise HellaSwagError(f"cannot download HellaSwag from {url} ({why}); fetch it yourself and pass "
                             f"--data FILE") from None
    return dest


def read_items(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Items {ctx, endings (4), label} of a HellaSwag JSON-lines file (the first `limit` only, if given)."""
    path = Path(path)
    if path.is_dir():
        raise HellaSwagError(f"{path}: is a folder; give the JSON-lines file (hellaswag_val.jsonl)")
    if not path.is_file():
        raise HellaSwagError(f"{path}: no such file")
    items = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if limit is not None and len(items) >= limit:
                break
            try:  # line by line, so a file that is not UTF-8 (or not JSON lines at all) is named with its line
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise HellaSwagError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1});"
                                     f" give the JSON-lines file (hellaswag_val.jsonl)") from None
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                endings, label = d["endings"], d["label"]
                # a string would split into one-letter endings, and true would read as label 1
                if not isinstance(endings, list) or not all(isinstance(e, str) for e in endings):
                    raise TypeError(f"endings must be a list of strings, not {json.dumps(endings)[:60]}")
                if isinstance(label, bool) or not isinstance(label, (int, str)):
                    raise TypeError(f"label must be an integer, not {json.dumps(label)}")
                item = dict(ctx=str(d["ctx"]), endings=endings, label=int(label))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise HellaSwagError(f"{path}:{n}: not a HellaSwag item (need ctx, endings, label; "
                                     f"{type(e).__name__}: {e})") from None
            if len(item["endings"]) < 2:  # one ending is always chosen: an accuracy of 100% that says nothing
                raise HellaSwagError(f"{path}:{n}: {len(item['endings'])} ending(s); an item needs 2 or more to "
                                     f"choose from")
            if not 0 <= item["label"] < len(item["endings"]):
                raise HellaSwagError(f"{path}:{n}: label {item['label']} does not index the "
                                     f"{len(item['endings'])} endings")
            empty = [k for k, e in enumerate(item["endings"]) if not e.strip()]
            if empty:  # no tokens to score: its mean cross-entropy would be nan, and nan "wins" the argmin
                raise HellaSwagError(f"{path}:{n}: ending {empty[0]} is empty; every ending needs text to score")
            items.append(item)
    if not items:
        raise HellaSwagError(f"{path}: no items")
    return items


@torch.no_grad()
def score_item(model: GPT, ctx: str, endings: list[str], window: int | None = None) -> list[float]:
    """Mean cross-entropy of each ending's tokens after [EOT] + ctx (lower = more likely)."""
    enc = gpt2()
    window = final_window(model) if window is None else window
    device = next(model.parameters()).device
    prefix = torch.tensor([EOT] + enc.encode_ordinary(ctx), dtype=torch.int32, device=device)
    cache = KVCache()
    first = model.forward_cached(prefix, cache, window, last_only=True)  # predicts each ending's first token
    scores = []
    for ending in endings:
        tokens = torch.tensor(enc.encode_ordinary(" " + ending), dtype=torch.int64, device=device)
        if tokens.numel() == 0:
            scores.append(float("inf"))
            continue
        logits = first
        if tokens.numel() > 1:
            rest = model.forward_cached(tokens[:-1].int(), cache.copy(), window)
            logits = torch.cat([first, rest])
        # over the padded vocabulary, as the training and validation losses are
        scores.append(F.cross_entropy(logits.float(), tokens).item())
    return scores


def evaluate_hellaswag(checkpoint, data: str | os.PathLike | None = None, limit: int | None = None,
                       device: str | None = None, say=print) -> float:
    """Accuracy of a checkpoint on HellaSwag validation items (the official file unless `data` is given)."""
    if checkpoint is None:
        raise HellaSwagError("usage: speedrun eval hellaswag CHECKPOINT [--data FILE] [--limit N]")
    checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load(resolve(checkpoint))  # before downloads
    path = Path(data) if data is not None else download()
    items = read_items(path, limit)
    model, _, ckpt = load_on(checkpoint, device)
    window = final_window(model)
    correct = 0
    bar = tqdm(items, desc="hellaswag", unit="item", disable=None)  # disable=None: no bar when not a terminal
    for n, item in enumerate(bar, 1):
        scores = score_item(model, item["ctx"], item["endings"], window)
        correct += int(min(range(len(scores)), key=scores.__getitem__) == item["label"])
        bar.set_postfix(acc=f"{correct / n:.4f}", refresh=False)
    accuracy = correct / len(items)
    say(f"hellaswag: accuracy {accuracy:.4f} ({correct}/{len(items)} items of {path}; checkpoint {ckpt.path}, "
        f"step {ckpt.step})")
    return accuracy
