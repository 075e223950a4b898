"""Recipes as data: a flat dataclass of every number a run needs, loaded from TOML by name or path.

`load_recipe("record21", overrides=["steps=200"])` follows the file's `base = "..."` chain, applies the overrides,
type-checks every field and checks the combinations; any problem is a one-line RecipeError naming the culprit.
"""

import dataclasses
import difflib
import math
import sys
import typing
from dataclasses import dataclass
from pathlib import Path

from speedrun.errors import SpeedrunError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RECIPE_DIR = Path(__file__).parent / "recipes"
FLOAT32_MAX = 3.4028234663852886e38


class RecipeError(SpeedrunError, ValueError):
    """A recipe file, name, field or value is wrong. The message is one line and names the culprit."""


@dataclass
class Recipe:
    """Every field is required: record21.toml states them all; other recipes name it as `base`."""

    # --- data -------------------------------------------------------------------------------------
    train_files: str  # file, folder (its *_train_*.bin where it has them, else every .bin), glob, or "demo" (bundled)
    val_files: str  # the same, *_val_*.bin
    val_tokens: int  # positions scored at each validation
    train_loop: bool  # start the train stream again from its first shard when it runs out

    # --- model --------------------------------------------------------------------------------------
    vocab_size: int
    vocab_multiple: int  # the head's output is padded to a multiple of this
    num_layers: int
    model_dim: int
    num_heads: int
    head_dim: int
    mlp_hidden: int
    value_embeds: int  # tables used by the first and again by the last `value_embeds` layers
    no_attn_layers: list[int]
    window_pattern: str  # per layer: L = long window, S = short (half) window
    attn_scale: float
    rotary_base: float  # frequencies (1/base) ** linspace(0, 1, head_dim/4), then head_dim/4 zeros
    logit_cap: float  # logits = cap * sigmoid(raw / cap_div)
    logit_cap_div: float
    fp8_head: bool  # FP8 head matmul in training (GPU with compute capability >= 8.9 only)
    fp8_x_scale: float
    fp8_w_scale: float
    fp8_grad_scale: float
    fp8_mlp: bool  # MLP matmuls (forward and both gradients) in FP8 with per-tensor scales (fp8_mlp_scaling), in training
    fused_head_loss: bool  # FP8 head + soft-capped cross-entropy as one op, gradient written in the forward (Triton)
    no_mlp_layers: list[int]  # layers without an MLP
    smear: bool  # add a gated share of the previous token's embedding to each token's (within a document)
    attn_gate: bool  # per-head sigmoid gate on attention outputs, computed from the first gate_dims input dims
    gate_dims: int  # input dims the smear and attention gates read
    mtp_weights: list[float]  # multi-token prediction: step-0 weights of extra targets +2, +3, ... in training ([]: off)
    mtp_end_frac: float  # the mtp weights fall linearly to 0 at this fraction of the steps (then pure next-token)

    # --- attention windows -------------------------------------------------------------------------------
    attn_block_size: int
    window_ramp_tokens: int  # long window at step s of N: block * ceil(ramp * s / N / block), >= 1 block

    # --- batch ------------------------------------------------------------------------------------------
    batch_tokens: int  # global tokens per optimiser step (all ranks, all accumulation steps)
    seq_len: int  # tokens per rank per micro-step (one row)
    val_seq_len: int  # tokens per rank per validation batch

    # --- optimisation -------------------------------------------------------------------------------------
    steps: int
    adam_betas: list[float]
    adam_eps: float
    lr_head: float
    lr_embed: float
    lr_scalar: float
    muon_lr: float
    muon_momentum: float
    muon_momentum_start: float
    muon_momentum_warmup_steps: int
    ns_steps: int
    ns_coefficients: list[float]
    orthogonalizer: str  # newton_schulz (ns_coefficients every iteration) | polar_express (per-iteration coefficients)
    normuon_beta2: float  # NorMuon: EMA of the update's per-neuron second moment (0: off)
    cooldown_frac: float
    min_lr_frac: float

    # --- loop -----------------------------------------------------------------------------------------------
    val_every: int  # 0: only at the end (step 0 is always validated when > 0)
    warmup_steps: int  # untimed kernel warm-up steps, then model and optimisers are restored
    seed: int
    device: str  # auto | cuda | cpu
    compile: str  # auto (on for cuda) | on | off
    gpu_only: bool  # refuse to run on CPU unless --device cpu is forced
    sample_tokens: int  # after training, print a sample of this many tokens (0: none)
    sample_prompt: str
    # Later ideas, with defaults (off) so that logs and checkpoints written before them still load.
    key_offset: bool = False  # long-window layers: the keys' position-free dims taken from the previous token
    tied_head: bool = False  # one (padded_vocab, dim) table is the token embedding and the head (Adam at lr_head)
    # sampled softmax in training (speedrun.model.sampled_head): the loss over this many head rows, every target of
    # the step among them (0: off), until sampled_head_end_frac of the steps; the full softmax after
    sampled_head_rows: int = 0
    sampled_head_end_frac: float = 0.93
    # dynamic (each tensor's own maximum) | delayed (ReLU² and its gradient: last step's); without fp8_mlp: no effect
    fp8_mlp_scaling: str = "dynamic"
    name: str = ""
    description: str = ""

    # ---------------------------------------------------------------------------------------------------------
    @property
    def padded_vocab(self) -> int:
        return math.ceil(self.vocab_size / self.vocab_multiple) * self.vocab_multiple

    def value_embed_layer(self, layer: int) -> int | None:
        """Which value-embedding table `layer` uses: first k layers use 0..k-1, last k layers again 0..k-1."""
        k = self.value_embeds
        if layer < k:
            return layer
        if layer >= self.num_layers - k:
            return layer - (self.num_layers - k)
        return None

    def grad_accum_steps(self, world_size: int) -> int:
        return self._rows_per_rank("batch_tokens", "seq_len", world_size)

    def val_batches(self, world_size: int) -> int:
        """Validation batches per rank (each of val_seq_len tokens)."""
        return self._rows_per_rank("val_tokens", "val_seq_len", world_size)

    def _rows_per_rank(self, total: str, row: str, world_size: int) -> int:
        per_step = world_size * getattr(self, row)
        if getattr(self, total) % per_step:
            raise RecipeError(f"{total}={getattr(self, total)} is not divisible by world size {world_size} x "
                              f"{row} {getattr(self, row)} = {per_step}")
        return getattr(self, total) // per_step

    def check(self) -> "Recipe":
        """Check combinations that no single type can; raise RecipeError naming the field."""
        def need(cond, msg):
            if not cond:
                raise RecipeError(f"recipe {self.name or '?'}: {msg}")

        for f in ("vocab_size", "num_layers", "model_dim", "num_heads", "head_dim", "mlp_hidden", "seq_len",
                  "val_seq_len", "batch_tokens", "val_tokens", "attn_block_size", "vocab_multiple"):
            need(getattr(self, f) > 0, f"{f}={getattr(self, f)} must be positive")
        need(self.steps >= 1, f"steps={self.steps} must be >= 1")
        need(self.name and not self.name.startswith(".") and not set(self.name) & set("/\\\0"),
             f"name={self.name!r} names the run's log and checkpoint files: give a non-empty name "
             "without '/', '\\' or a leading '.'")
        need(self.num_layers % 2 == 0, f"num_layers={self.num_layers} must be even (U-net skips pair layers)")
        need(len(self.window_pattern) == self.num_layers,
             f"window_pattern has {len(self.window_pattern)} entries for num_layers={self.num_layers} (one letter a "
             f"layer: L for the long window, S for the short)")
        need(set(self.window_pattern) <= {"L", "S"}, "window_pattern may hold only 'L' and 'S'")
        need(2 * self.value_embeds <= self.num_layers, f"value_embeds={self.value_embeds} needs >= 2x as many layers")
        need(all(0 <= i < self.num_layers for i in self.no_attn_layers),
             f"no_attn_layers={self.no_attn_layers} must name existing layers, 0..{self.num_layers - 1}")
        need(self.head_dim % 4 == 0, f"head_dim={self.head_dim} must be a multiple of 4 (half-truncated rotary)")
        need(self.model_dim % self.num_heads == 0,
             f"model_dim={self.model_dim} must be divisible by num_heads={self.num_heads} (head_dim = model_dim / num_heads)")
        need(self.num_heads * self.head_dim == self.model_dim,
             f"num_heads={self.num_heads} x head_dim={self.head_dim} must equal model_dim={self.model_dim} (the value "
             f"embeddings add to the heads' values); leave head_dim out and it follows from the other two")
        for f in ("lr_head", "lr_embed", "lr_scalar", "muon_lr", "adam_eps", "attn_scale", "logit_cap", "logit_cap_div",
                  "rotary_base", "fp8_x_scale", "fp8_w_scale", "fp8_grad_scale"):
            need(getattr(self, f) > 0, f"{f}={getattr(self, f)} must be positive")
        for f in ("muon_momentum", "muon_momentum_start", "min_lr_frac"):
            need(0 <= getattr(self, f) < 1, f"{f}={getattr(self, f)} must lie in [0, 1)")
        for f in ("seq_len", "val_seq_len"):
            need(getattr(self, f) % self.attn_block_size == 0,
                 f"{f}={getattr(self, f)} must be a multiple of attn_block_size={self.attn_block_size}")
        final_window = math.ceil(self.window_ramp_tokens / self.attn_block_size) * self.attn_block_size
        need(self.window_ramp_tokens > 0, f"window_ramp_tokens={self.window_ramp_tokens} must be positive")
        need(final_window <= self.seq_len,
             f"window_ramp_tokens={self.window_ramp_tokens} gives a final window of {final_window} tokens, "
             f"longer than seq_len={self.seq_len}")
        need(self.val_tokens % self.val_seq_len == 0,
             f"val_tokens={self.val_tokens} must be a multiple of val_seq_len={self.val_seq_len}")
        need(self.batch_tokens % self.seq_len == 0,
             f"batch_tokens={self.batch_tokens} must be a multiple of seq_len={self.seq_len}")
        need(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
             f"adam_betas={self.adam_betas} must be two values in [0, 1)")
        need(len(self.ns_coefficients) == 3, "ns_coefficients must be three numbers (a, b, c)")
        need(self.orthogonalizer in ("newton_schulz", "polar_express"),
             f"orthogonalizer={self.orthogonalizer!r} must be newton_schulz or polar_express")
        if self.orthogonalizer == "polar_express":
            from speedrun.optim.muon import POLAR_EXPRESS_COEFFICIENTS

            need(1 <= self.ns_steps <= len(POLAR_EXPRESS_COEFFICIENTS),
                 f"ns_steps={self.ns_steps}: polar_express has coefficients for 1..{len(POLAR_EXPRESS_COEFFICIENTS)} steps")
        need(0 <= self.normuon_beta2 < 1, f"normuon_beta2={self.normuon_beta2} must lie in [0, 1) (0: off)")
        need(all(0 <= i < self.num_layers for i in self.no_mlp_layers),
             f"no_mlp_layers={self.no_mlp_layers} must name existing layers, 0..{self.num_layers - 1}")
        need(self.fp8_head or not self.fused_head_loss, "fused_head_loss needs fp8_head = true (it fuses the FP8 head)")
        need(0 < self.gate_dims <= self.model_dim, f"gate_dims={self.gate_dims} must lie in 1..model_dim")
        need(len(self.mtp_weights) <= 3 and all(w >= 0 for w in self.mtp_weights),
             f"mtp_weights={self.mtp_weights} must hold at most 3 weights, each >= 0 ([]: off)")
        need(0 < self.mtp_end_frac <= 1, f"mtp_end_frac={self.mtp_end_frac} must lie in (0, 1]")
        need(self.sampled_head_rows == 0 or (0 < self.sampled_head_rows < self.padded_vocab
                                             and self.sampled_head_rows % 128 == 0),
             f"sampled_head_rows={self.sampled_head_rows} must be 0 (off) or a multiple of 128 below the head's "
             f"{self.padded_vocab} rows")
        need(0 < self.sampled_head_end_frac <= 1, f"sampled_head_end_frac={self.sampled_head_end_frac} must lie in (0, 1]")
        need(0 <= self.cooldown_frac <= 1, f"cooldown_frac={self.cooldown_frac} must lie in [0, 1]")
        need(self.fp8_mlp_scaling in ("dynamic", "delayed"),
             f"fp8_mlp_scaling={self.fp8_mlp_scaling!r} must be dynamic or delayed")
        need(self.device in ("auto", "cuda", "cpu"), f"device={self.device!r} must be auto, cuda or cpu")
        need(self.compile != "tuned", "compile='tuned' was removed (experiments part 21; `git show abc2775` has its code): "
             "TORCHINDUCTOR_COORDINATE_DESCENT_TUNING=1 sets the same Inductor option")
        need(self.compile != "graphs", "compile='graphs' was removed (experiments part 25; `git show 01dfd43` has its code): "
             "CUDA graph trees refused the model (allocations in the graph pool not tracked as outputs)")
        need(self.compile in ("auto", "on", "off"), f"compile={self.compile!r} must be auto, on or off")
        for f in ("val_every", "warmup_steps"):  # each named with its value (one message named both)
            need(getattr(self, f) >= 0, f"{f}={getattr(self, f)} must be >= 0")
        need(self.sample_tokens >= 0, f"sample_tokens={self.sample_tokens} must be >= 0 (0: no sample)")
        # torch's seeds: a negative one is taken modulo 2**64 (seed -1 is 2**64 - 1), and past that range it overflows
        need(0 <= self.seed <= MAX_SEED, f"seed={self.seed} must lie in 0..{MAX_SEED} (torch's seeds)")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(Recipe)}
REQUIRED = [n for n, f in FIELDS.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
# the optional fields' values when a recipe (or an older log) leaves them out
DEFAULTS = {n: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for n, f in FIELDS.items() if n not in REQUIRED}

# Ideas measured as no gain on the 1-GPU track and then removed: each field and its "off" value. Their results are
# in experiments/2026-11-25_fast-1gpu-h100/README.md; commit RETIRED_AT (or the field's own in RETIRED_COMMITS)
# holds their code. Old recipe files, logs
# and checkpoints still load while these fields hold their off value.
RETIRED_AT = "fe89ee1"
RETIRED_FIELDS = {
    "align_rows_to_docs": False, "max_doc_tokens": 0, "max_doc_tokens_stages": [], "batch_stages": [],
    "fused_mlp": False, "ve_gate": False, "skip_gate": False, "bigram_buckets": 0, "paired_head_layers": [],
    "adam_every": 1, "ns_symmetric_kernel": False, "muon_weight_decay": 0.0, "backout_after": 0,
    "logit_offset": 0.0, "attn_proj_random_init": False, "scalar_adam_betas": [], "untied_value_embeds": False,
    "fp8_attn": False, "attention_kernel": "triton", "xsa": False, "fp8_qkv": False, "normuon_output_axis": False,
    "head_embed_adam_betas": [], "value_embed_adam_betas": [], "skip_pairs": [], "block_lambda_init": 1.0,
    "tail_average_groups": [], "tail_average_start_frac": 0.65, "tail_average_decay": 0.9933,
    "tail_average_blend": 0.65, "muon_momentum_cooldown_steps": 0, "sampled_head_weighted_negatives": False,
    "sampled_head_full_tokens": 0,
}
RETIRED_COMMITS = {"backout_after": "8ee2980", "logit_offset": "34c3e85", "attn_proj_random_init": "34c3e85",
                   "scalar_adam_betas": "34c3e85", "untied_value_embeds": "ffc21d6",
                   "fp8_attn": "2acae1f", "attention_kernel": "5699dc3", "xsa": "8eaae27",
                   "fp8_qkv": "073984e", "normuon_output_axis": "5776620",
                   "head_embed_adam_betas": "741f397", "value_embed_adam_betas": "741f397",
                   "skip_pairs": "4b27225", "block_lambda_init": "4b27225",
                   "tail_average_groups": "a3a0049", "tail_average_start_frac": "a3a0049",
                   "tail_average_decay": "a3a0049", "tail_average_blend": "a3a0049",
                   "muon_momentum_cooldown_steps": "18f590c",
                   "sampled_head_weighted_negatives": "40133b6", "sampled_head_full_tokens": "0a8501e"}  # removed later than RETIRED_AT


def _is_retired(key: str, value, source: str) -> bool:
    """True for a retired field at its off value (to be dropped); RecipeError for one that asks for the idea."""
    if key not in RETIRED_FIELDS:
        return False
    if isinstance(value, str):
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    if value != RETIRED_FIELDS[key]:
        raise RecipeError(f"{source}: {key}={value!r}: this idea was measured as no gain and removed "
                          f"(experiments/2026-11-25_fast-1gpu-h100/README.md; `git show "
                          f"{RETIRED_COMMITS.get(key, RETIRED_AT)}` has its code)")
    return True


MAX_SEED = 2**64 - 1


def _coerce(key: str, value, source: str, typed: bool = False):
    """Convert `value` (from TOML or a --set string) to the field's type, or raise RecipeError. typed: a TOML file's
    value, whose type is the file's own (`steps = "8"` is a string there, not read as a number)."""
    if key not in FIELDS:
        if key == "base":  # a recipe file's line, not a field: --set cannot change what the recipe starts from
            raise RecipeError(f"{source}: base names a recipe file's starting recipe, not a field; give --recipe NAME "
                              f"(or a .toml file with base = ...)")
        # a spelling close to a field's (any case), else the fields that hold the word (lr: lr_head, muon_lr, ...)
        close = (difflib.get_close_matches(key.lower(), FIELDS, n=3)
                 or [f for f in FIELDS if key.lower() in f.split("_")][:4])
        hint = f"did you mean {' or '.join(close)}?" if close else "`speedrun train --dry-run` lists the fields"
        raise RecipeError(f"{source}: unknown recipe key {key!r} ({hint})")
    hint = typing.get_type_hints(Recipe)[key]
    # the value as read by then, in TOML's spelling of a bool (true, not True)
    bad = lambda: RecipeError(f"{source}: {key}={str(value).lower() if isinstance(value, bool) else repr(value)} is "
                              f"not a valid {_type_name(hint)}")
    if typed and isinstance(value, str) and hint is not str:
        kind = {int: "a whole number", float: "a number", bool: "true or false"}.get(hint, "a list ([...])")
        raise RecipeError(f"{source}: {key} = {value!r} is quoted, so a string; {key} takes {kind}: write it without "
                          f"the quotes")
    if isinstance(value, str) and (hint is not str or value[:1] in "\"'" and value[-1:] == value[:1] and len(value) > 1):
        try:
            value = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            try:  # Python's spellings TOML lacks (.1, 1.): a number all the same
                if hint is not float:
                    raise ValueError
                value = float(value)
            except ValueError:
                raise bad() from None
    try:
        if typing.get_origin(hint) is list:
            if not isinstance(value, list):
                raise TypeError
            return [_scalar(typing.get_args(hint)[0], v, whole_floats=False) for v in value]
        return _scalar(hint, value)
    except TypeError:
        raise bad() from None


def _scalar(kind, v, whole_floats: bool = True):
    """v as a `kind` (bool, int, float or str) where it is one, else TypeError. A bool is no number here."""
    if isinstance(v, bool) != (kind is bool):
        raise TypeError
    if kind is int and (isinstance(v, int) or whole_floats and isinstance(v, float) and v.is_integer()):
        return int(v)
    # inf and nan set no sensible recipe; past float32's range a value overflows where the optimisers hold it
    if kind is float and isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= FLOAT32_MAX:
        return float(v)
    if kind in (bool, str) and isinstance(v, kind):
        return v
    raise TypeError


def _type_name(hint) -> str:
    if hint is float:
        return "finite number (within float32's +-3.4e38)"
    if hint is bool:
        return "bool (true or false)"
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.toml"))


def _read_toml(name_or_path: str, seen: tuple = ()) -> dict:
    """A recipe's values, its base chain merged in; `seen`: the (resolved, given) paths of the files that led here."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = RECIPE_DIR / f"{name_or_path}.toml"
        if not path.exists():
            close = difflib.get_close_matches(name_or_path.lower(), recipe_names(), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise RecipeError(
                f"unknown recipe {name_or_path!r} ({hint}known: {', '.join(recipe_names())}; or give a .toml path)")
    elif not path.exists():
        bundled = f" (the bundled recipe is --recipe {path.stem})" if path.stem in recipe_names() else ""
        raise RecipeError(f"{path}: no such recipe file{bundled}")
    if str(path.resolve()) in (resolved for resolved, _ in seen):
        chain = " -> ".join([shown for _, shown in seen] + [str(path)])
        raise RecipeError(f"{path}: recipe base chain loops: {chain}; one of these files must name another base")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); a recipe "
                          "file is TOML") from None
    except OSError as e:
        raise RecipeError(f"{path}: cannot read: {e.strerror or e}") from None
    base = data.pop("base", None)
    values = {k: _coerce(k, v, str(path), typed=True) for k, v in data.items() if not _is_retired(k, v, str(path))}
    if base is not None:
        # a base that is not there: said with the file that names it
        if not isinstance(base, str) or not base.endswith(".toml") and base not in recipe_names():
            close = difflib.get_close_matches(str(base), recipe_names(), n=1)
            raise RecipeError(f"{path}: base = {base!r} is no recipe ({f'did you mean {close[0]}? ' if close else ''}"
                              f"known: {', '.join(recipe_names())}; or a .toml path from this file's folder)")
        if base.endswith(".toml") and not (path.parent / base).is_file():
            bundled = f"; the bundled recipe is base = {Path(base).stem!r}" if Path(base).stem in recipe_names() else ""
            raise RecipeError(f"{path}: base = {base!r}: no such recipe file {path.parent / base}{bundled}")
        merged = _read_toml(base if not base.endswith(".toml") else str(path.parent / base), seen + ((str(path.resolve()), str(path)),))
        merged.pop("name", None)
        merged.pop("description", None)
        merged.update(values)
        _derive_shapes(merged, set(values))
        values = merged
    values.setdefault("name", path.stem)
    return values


def load_recipe(name_or_path: str = "tiny", overrides: list[str] | dict | None = None) -> Recipe:
    values = _read_toml(name_or_path)
    given = apply_overrides(values, overrides)
    _derive_shapes(values, given)
    missing = [f for f in REQUIRED if f not in values]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise RecipeError(f"recipe {name_or_path}: missing field(s) {shown}; start from a recipe with base = \"tiny\" "
                          f"(CPU) or another of {', '.join(recipe_names())}, or give every field")
    try:
        return Recipe(**values).check()
    except RecipeError as e:  # a file's value: name the file, as its other errors do
        if Path(name_or_path).suffix == ".toml":
            raise RecipeError(f"{name_or_path}: {e}") from None
        raise


def apply_overrides(values: dict, overrides: list[str] | dict | None) -> set:
    """Apply `key=value` strings (--set) or a {key: value} dict to a recipe's field values (in place),
    type-checked; returns the keys given."""
    if isinstance(overrides, dict):
        items = [(k, v, "override") for k, v in overrides.items()]
    else:
        items = []
        for item in overrides or []:
            if "=" not in item:
                raise RecipeError(f"--set {item!r}: expected key=value")
            k, v = item.split("=", 1)
            items.append((k.strip(), v.strip(), f"--set {k.strip()}"))
    for k, v, source in items:
        if not _is_retired(k, v, source):
            values[k] = _coerce(k, v, source)
    return {k for k, _, _ in items}


def _derive_shapes(values: dict, given: set) -> None:
    """As in nanoGPT, a width or head count given alone sets what follows from it: head_dim = model_dim /
    num_heads (the value embeddings add to the heads' values, so the heads must fill model_dim exactly) and
    mlp_hidden = 4 x model_dim. A field given explicitly is left as given (and checked)."""
    if ({"model_dim", "num_heads"} & given and "head_dim" not in given and values["num_heads"] > 0
            and values["model_dim"] % values["num_heads"] == 0):
        values["head_dim"] = values["model_dim"] // values["num_heads"]
    if "model_dim" in given and "mlp_hidden" not in given:
        values["mlp_hidden"] = 4 * values["model_dim"]


def recipe_from_dict(d: dict, source: str = "recipe") -> Recipe:
    """A Recipe from the dict a run log or checkpoint stored (retired fields at their off value are dropped)."""
    d = {k: v for k, v in d.items() if not _is_retired(k, v, source)}
    unknown = sorted(set(d) - set(FIELDS))
    if unknown:
        raise RecipeError(f"{source}: unknown field(s) {', '.join(unknown)}")
    missing = [f for f in REQUIRED if f not in d]
    if missing:
        raise RecipeError(f"{source}: missing field(s) {', '.join(missing)}")
    return Recipe(**d).check()
