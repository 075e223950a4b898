"""Recipes: loading, inheritance, overrides, derived shapes, retired fields, errors (the spec: test_recipe_spec.py)."""

import json

import pytest

from speedrun.recipe import (
    FIELDS,
    RECIPE_DIR,
    REQUIRED,
    RETIRED_AT,
    RETIRED_COMMITS,
    RETIRED_FIELDS,
    Recipe,
    RecipeError,
    load_recipe,
    recipe_from_dict,
    recipe_names,
)


@pytest.fixture(scope="module")
def r21() -> Recipe:
    return load_recipe("record21")


# ---------------------------------------------------------------------------------------------------------
# the other bundled recipes, inheritance

def test_recipe_names():
    assert recipe_names() == ["fast", "fast_1gpu", "record21", "record21_1gpu", "tiny"]


def test_record21_1gpu(r21):
    r = load_recipe("record21_1gpu")
    assert r.batch_tokens == 49152 == r.seq_len
    assert r.grad_accum_steps(1) == 1
    assert r.train_loop is True
    assert r.name == "record21_1gpu" and r.description and r.description != r21.description
    differ = {k for k, v in r.to_dict().items() if v != r21.to_dict()[k]}
    assert differ == {"batch_tokens", "train_loop", "name", "description"}


def test_tiny(r21):
    r = load_recipe("tiny")
    assert load_recipe() == r, "tiny is the default recipe"
    assert (r.num_layers, r.model_dim, r.num_heads, r.head_dim, r.mlp_hidden) == (6, 128, 2, 64, 512)
    assert r.train_files == r.val_files == "demo"
    assert r.gpu_only is False and r.fp8_head is False
    assert r.value_embeds == 2 and [r.value_embed_layer(i) for i in range(6)] == [0, 1, None, None, 0, 1]
    assert r.grad_accum_steps(1) == 1
    # everything it does not set comes from record21
    for k in ("attn_scale", "rotary_base", "logit_cap", "logit_cap_div", "adam_betas", "adam_eps", "lr_head",
              "lr_embed", "lr_scalar", "muon_lr", "muon_momentum", "muon_momentum_start", "ns_steps",
              "ns_coefficients", "cooldown_frac", "min_lr_frac", "attn_block_size", "vocab_size", "seed"):
        assert getattr(r, k) == getattr(r21, k), k


@pytest.mark.parametrize("field, off", sorted(RETIRED_FIELDS.items()))
def test_retired_fields_load_when_off_and_refuse_when_on(field, off, tmp_path):
    """Ideas measured as no gain were removed: an old recipe file, --set or checkpoint recipe that states one at its
    off value still loads (the field is dropped); asking for the idea is a one-line error that says where it went."""
    assert field not in FIELDS
    assert load_recipe("tiny", {field: off}) == load_recipe("tiny")
    path = tmp_path / "old.toml"
    path.write_text(f'base = "tiny"\n{field} = {json.dumps(off).lower()}\n')
    assert load_recipe(str(path)).to_dict() == {**load_recipe("tiny").to_dict(), "name": "old", "description": ""}
    assert recipe_from_dict({**load_recipe("tiny").to_dict(), field: off}) == load_recipe("tiny")
    on = {bool: True, int: 2, float: 0.5, list: [2], str: "fa4"}[type(off)]
    msg = _error("tiny", [f"{field}={json.dumps(on).lower()}"])
    commit = RETIRED_COMMITS.get(field, RETIRED_AT)
    assert msg.startswith(f"--set {field}:") and "measured as no gain and removed" in msg and commit in msg
    assert "\n" not in msg


def test_to_dict_round_trip(r21):
    d = r21.to_dict()
    assert set(d) == set(FIELDS)
    assert Recipe(**d) == r21


def _write(path, text):
    path.write_text(text)
    return path


def test_toml_file_with_base_name(tmp_path, r21):
    path = _write(tmp_path / "mine.toml", 'base = "record21"\nsteps = 100\nmuon_lr = 0.04\n')
    r = load_recipe(str(path))
    assert r.name == "mine"
    assert r.description == "", "the description is not inherited"
    assert (r.steps, r.muon_lr) == (100, 0.04)
    assert r.to_dict() | {"steps": 1770, "muon_lr": 0.05, "name": "record21", "description": r21.description} \
        == r21.to_dict()


@pytest.mark.parametrize("line, kind", [('steps = "8"', "a whole number"), ('muon_lr = "0.1"', "a number"),
                                        ('train_loop = "false"', "true or false"),
                                        ('no_mlp_layers = "[1,4]"', r"a list \(\[\.\.\.\]\)")])
def test_a_quoted_value_in_a_toml_file_is_its_type_error(tmp_path, line, kind):
    """In a file, TOML's types are the file's: a quoted number is a string (as --set's text is parsed, a file's
    is not), said with the fix."""
    path = _write(tmp_path / "q.toml", f'base = "tiny"\n{line}\n')
    key = line.split()[0]
    with pytest.raises(RecipeError, match=rf"q.toml: {key} = .* is quoted, so a string; {key} takes {kind}: write it "
                                          r"without the quotes$"):
        load_recipe(str(path))
    assert load_recipe("tiny", [line.replace(" ", "").replace('"', "")])  # --set's text: parsed as before


def test_toml_base_chain_relative_to_file(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "a.toml", 'base = "tiny"\nsteps = 11\nseed = 5\ndescription = "a"\n')
    _write(tmp_path / "sub" / "b.toml", 'base = "a.toml"\nsteps = 22\n')
    r = load_recipe(str(tmp_path / "sub" / "b.toml"))
    assert (r.steps, r.seed, r.num_layers, r.name, r.description) == (22, 5, 6, "b", "")


def test_toml_name_can_be_set(tmp_path):
    r = load_recipe(str(_write(tmp_path / "x.toml", 'base = "tiny"\nname = "custom"\n')))
    assert r.name == "custom"


def test_full_recipe_without_base(tmp_path, r21):
    text = (RECIPE_DIR / "record21.toml").read_text()
    r = load_recipe(str(_write(tmp_path / "copy.toml", text)))
    assert r.to_dict() | {"name": "record21"} == r21.to_dict()


# ---------------------------------------------------------------------------------------------------------
# overrides

@pytest.mark.parametrize("item, field, value", [
    ("steps=200", "steps", 200),
    (" steps = 7 ", "steps", 7),
    ("steps=1.0", "steps", 1),
    ("muon_lr=0.02", "muon_lr", 0.02),
    ("muon_lr=1", "muon_lr", 1.0),
    ("adam_eps=1e-8", "adam_eps", 1e-8),
    ("train_loop=false", "train_loop", False),
    ("fp8_head=true", "fp8_head", True),
    ("no_attn_layers=[1, 2]", "no_attn_layers", [1, 2]),
    ("no_attn_layers=[]", "no_attn_layers", []),
    ("adam_betas=[0.9, 0]", "adam_betas", [0.9, 0.0]),
    ("sample_prompt=Hello", "sample_prompt", "Hello"),
    ('sample_prompt="Hello world"', "sample_prompt", "Hello world"),
    ("sample_prompt='a=b'", "sample_prompt", "a=b"),
    ("train_files=/data/x_*.bin", "train_files", "/data/x_*.bin"),
    ("window_pattern=LLLLLL", "window_pattern", "LLLLLL"),
    ("no_mlp_layers=[0, 3]", "no_mlp_layers", [0, 3]),
])
def test_override(item, field, value):
    r = load_recipe("tiny", [item])
    got = getattr(r, field)
    assert got == value and type(got) is type(value)
    if isinstance(value, list):
        assert all(type(a) is type(b) for a, b in zip(got, value))


def test_overrides_apply_in_order_and_over_base():
    r = load_recipe("record21_1gpu", ["steps=5", "steps=6", "batch_tokens=98304"])
    assert (r.steps, r.batch_tokens) == (6, 98304)


def test_dict_overrides():
    r = load_recipe("tiny", {"steps": 5, "muon_lr": 1, "sample_prompt": "Hi", "train_loop": False})
    assert (r.steps, r.muon_lr, r.sample_prompt, r.train_loop) == (5, 1.0, "Hi", False)
    assert type(r.muon_lr) is float
    with pytest.raises(RecipeError, match="steps"):
        load_recipe("tiny", {"steps": True})


# ---------------------------------------------------------------------------------------------------------
# errors: RecipeError, one line, naming the key or the file

def _error(name, overrides=None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(name, overrides)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_unknown_key_did_you_mean():
    msg = _error("tiny", ["stepz=1"])
    assert "'stepz'" in msg and "did you mean steps" in msg
    # no close spelling: the fields that hold the word
    assert _error("tiny", ["lr=0.1"]).endswith("(did you mean lr_head or lr_embed or lr_scalar or muon_lr?)")


def test_unknown_key_without_close_match():
    msg = _error("tiny", ["zzzqqq=1"])
    assert "'zzzqqq'" in msg and "--dry-run" in msg


@pytest.mark.parametrize("item, key", [
    ("steps=abc", "steps"),
    ("steps=1.5", "steps"),
    ("steps=true", "steps"),
    ("steps=[1]", "steps"),
    ("fp8_head=1", "fp8_head"),
    ("train_loop=yes", "train_loop"),
    ("train_loop=\"true\"", "train_loop"),
    ("muon_lr=fast", "muon_lr"),
    ("muon_lr=true", "muon_lr"),
    ("no_attn_layers=[1.5]", "no_attn_layers"),
    ("no_attn_layers=[true]", "no_attn_layers"),
    ("no_attn_layers=7", "no_attn_layers"),
    ("no_mlp_layers=[1.0]", "no_mlp_layers"),
    ("no_mlp_layers=1", "no_mlp_layers"),
    ('adam_betas=["a", "b"]', "adam_betas"),
    ("smear=1", "smear"),
    ("muon_lr=inf", "muon_lr"),  # a float field takes finite numbers only
    ("lr_head=nan", "lr_head"),
    ("mtp_weights=[0.5, nan]", "mtp_weights"),
    ("sample_prompt=5", None),  # str fields keep raw text: "5" is fine (checked below)
])
def test_bad_values(item, key):
    if key is None:
        assert load_recipe("tiny", [item]).sample_prompt == "5"
        return
    msg = _error("tiny", [item])
    assert msg.startswith(f"--set {key}:") and "is not a valid" in msg


def test_python_spellings_of_a_number_and_the_bool_words():
    """`.1` and `1.` are numbers to a user, though not to TOML; a bool's error says which words it takes."""
    assert load_recipe("tiny", ["muon_lr=.1", "lr_head=1."]).muon_lr == 0.1
    assert load_recipe("tiny", ["lr_head=1."]).lr_head == 1.0
    assert _error("tiny", ["train_loop=False"]) == ("--set train_loop: train_loop='False' is not a valid bool (true "
                                                    "or false)")
    assert "is not a valid int" in _error("tiny", ["steps=.5"])  # a float's spelling is for float fields only


def test_missing_equals():
    msg = _error("tiny", ["steps"])
    assert "'steps'" in msg and "key=value" in msg


def test_unknown_recipe_name():
    msg = _error("nosuch")
    assert "'nosuch'" in msg and "record21" in msg and "tiny" in msg


def test_missing_toml_file(tmp_path):
    msg = _error(str(tmp_path / "absent.toml"))
    assert str(tmp_path / "absent.toml") in msg and "no such" in msg


def test_toml_unknown_key(tmp_path):
    path = _write(tmp_path / "bad.toml", 'base = "tiny"\nmuon_lrr = 0.1\n')
    msg = _error(str(path))
    assert str(path) in msg and "'muon_lrr'" in msg and "did you mean muon_lr" in msg


def test_toml_bad_type(tmp_path):
    path = _write(tmp_path / "bad.toml", 'base = "tiny"\nsteps = "ten"\n')
    msg = _error(str(path))
    assert str(path) in msg and "steps" in msg


def test_invalid_toml(tmp_path):
    path = _write(tmp_path / "broken.toml", 'base = "tiny"\nsteps 10\n')
    msg = _error(str(path))
    assert str(path) in msg and "not valid TOML" in msg


def test_missing_fields(tmp_path):
    path = _write(tmp_path / "partial.toml", "steps = 10\n")
    msg = _error(str(path))
    assert str(path) in msg and "missing field(s)" in msg
    required = [k for k in REQUIRED if k != "steps"]
    # the first five named, the count of the rest, and a recipe to start from (tiny: the one a CPU runs)
    assert msg.endswith(f"missing field(s) {', '.join(required[:5])} and {len(required) - 5} more; start from a recipe "
                        f"with base = \"tiny\" (CPU) or another of fast, fast_1gpu, record21, record21_1gpu, tiny, or "
                        f"give every field")
    # fields added after logs and checkpoints were written have an off default, so those still load
    assert set(FIELDS) - set(REQUIRED) == {"name", "description", "key_offset", "fp8_mlp_scaling", "tied_head",
                                           "sampled_head_rows", "sampled_head_end_frac"}


def test_base_loop(tmp_path):
    _write(tmp_path / "a.toml", 'base = "b.toml"\nsteps = 1\n')
    _write(tmp_path / "b.toml", 'base = "a.toml"\nsteps = 2\n')
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    # the chain, file by file, so that the user sees which base to change
    assert _error(str(a)).endswith(f"recipe base chain loops: {a} -> {b} -> {a}; one of these files must name "
                                   "another base")
    _write(tmp_path / "self.toml", 'base = "self.toml"\n')
    msg = _error(str(tmp_path / "self.toml"))
    assert "loops" in msg and "self.toml -> " in msg


def test_unknown_base(tmp_path):
    msg = _error(str(_write(tmp_path / "x.toml", 'base = "nosuch"\n')))
    assert msg.startswith(f"{tmp_path / 'x.toml'}: base = 'nosuch' is no recipe (known: fast, ")  # names its file
    msg = _error(str(_write(tmp_path / "n.toml", "base = 3\n")))
    assert msg.startswith(f"{tmp_path / 'n.toml'}: base = 3 is no recipe")
    msg = _error(str(_write(tmp_path / "m.toml", 'base = "gone.toml"\n')))
    assert msg == f"{tmp_path / 'm.toml'}: base = 'gone.toml': no such recipe file {tmp_path / 'gone.toml'}"
    # the misspellings a recipe file's author makes: a close name, and the bundled recipe's file name
    assert "(did you mean tiny? known: fast, " in _error(str(_write(tmp_path / "t.toml", 'base = "tinny"\n')))
    assert _error(str(_write(tmp_path / "u.toml", 'base = "tiny.toml"\n'))) == (
        f"{tmp_path / 'u.toml'}: base = 'tiny.toml': no such recipe file {tmp_path / 'tiny.toml'}; the bundled recipe "
        f"is base = 'tiny'")
    # a value the recipe's check refuses: named with its file too
    assert _error(str(_write(tmp_path / "s.toml", 'base = "tiny"\nsteps = 0\n'))).startswith(f"{tmp_path / 's.toml'}: ")
    # --set base=... is no field, and a field in capitals is still found
    with pytest.raises(RecipeError, match=r"^--set base: base names a recipe file's starting recipe, not a field; "):
        load_recipe("tiny", ["base=record21"])
    with pytest.raises(RecipeError, match=r"unknown recipe key 'STEPS' \(did you mean steps"):
        load_recipe("tiny", ["STEPS=20"])
    with pytest.raises(RecipeError, match=r"^unknown recipe 'TINY' \(did you mean tiny\? "):
        load_recipe("TINY")
    with pytest.raises(RecipeError, match=r"^tiny.toml: no such recipe file \(the bundled recipe is --recipe tiny\)$"):
        load_recipe("tiny.toml")
    assert _error(str(_write(tmp_path / "b.toml", 'base = "tiny"\nsteps = true\n'))).endswith(
        "steps=true is not a valid int")  # TOML's spelling, not Python's True


def test_floats_past_float32_are_refused():
    # 1e300 is finite for Python, but overflows the optimisers' float32 state: refused before any work
    with pytest.raises(RecipeError, match=r"lr_embed.*finite number \(within float32's \+-3.4e38\)"):
        load_recipe("tiny", ["lr_embed=1e300"])
    assert load_recipe("tiny", ["lr_embed=1e38"]).lr_embed == 1e38


@pytest.mark.parametrize("items, fragment", [
    (["seq_len=1000", "batch_tokens=1000"], "seq_len=1000 must be a multiple of attn_block_size=128"),
    (["val_seq_len=1000"], "val_seq_len=1000 must be a multiple of attn_block_size=128"),
    (["window_ramp_tokens=2000"], "final window of 2048 tokens, longer than seq_len=1024"),
    (["num_layers=5", "window_pattern=LSSLS"], "num_layers=5 must be even"),
    (["window_pattern=LSSL"], "window_pattern has 4 entries for num_layers=6"),
    (["window_pattern=LSSXSL"], "window_pattern may hold only"),
    (["value_embeds=4"], "value_embeds=4"),
    (["no_attn_layers=[6]"], "no_attn_layers"),
    (["head_dim=66"], "head_dim=66"),
    (["batch_tokens=1536"], "batch_tokens=1536 must be a multiple of seq_len=1024"),
    (["steps=0"], "steps=0 must be >= 1"),
    (["model_dim=0"], "model_dim=0 must be positive"),
    (["adam_betas=[0.9]"], "adam_betas"),
    (["ns_coefficients=[1.0, 2.0]"], "ns_coefficients"),
    (["device=tpu"], "device='tpu'"),
    (["compile=maybe"], "compile='maybe'"),
    (["val_every=-1"], "val_every=-1 must be >= 0"),
    # every range error names the value it refuses, as the float fields' do (user test: these named the field only,
    # and warmup_steps's named val_every too)
    (["warmup_steps=-2"], "warmup_steps=-2 must be >= 0"),
    (["window_ramp_tokens=0"], "window_ramp_tokens=0 must be positive"),
    (["cooldown_frac=1.5"], "cooldown_frac=1.5 must lie in [0, 1]"),
    (["normuon_beta2=1"], "normuon_beta2=1.0 must lie in [0, 1)"),
    (["sampled_head_end_frac=0"], "sampled_head_end_frac=0.0 must lie in (0, 1]"),
    (["adam_betas=[0.9, 1.0]"], "adam_betas=[0.9, 1.0] must be two values in [0, 1)"),
    (["fused_head_loss=true"], "fused_head_loss needs fp8_head = true"),
    (["mtp_weights=[0.5, -0.1]"], "mtp_weights=[0.5, -0.1] must hold at most 3 weights, each >= 0"),
    (["mtp_weights=[0.5, 0.4, 0.3, 0.2]"], "must hold at most 3 weights"),
    (["mtp_end_frac=0"], "mtp_end_frac=0.0 must lie in (0, 1]"),
    (["mtp_end_frac=1.01"], "mtp_end_frac=1.01 must lie in (0, 1]"),
    (["num_heads=3"], "model_dim=128 must be divisible by num_heads=3"),
    (["model_dim=256", "head_dim=64"], "num_heads=2 x head_dim=64 must equal model_dim=256"),
    (["muon_lr=-1"], "muon_lr=-1.0 must be positive"),
    (["lr_embed=0"], "lr_embed=0.0 must be positive"),
    (["muon_momentum=1.5"], "muon_momentum=1.5 must lie in [0, 1)"),
    (["min_lr_frac=-0.1"], "min_lr_frac=-0.1 must lie in [0, 1)"),
    (["num_heads=0"], "num_heads=0 must be positive"),  # not a ZeroDivisionError where head_dim is derived
    (["rotary_base=0"], "rotary_base=0.0 must be positive"),
    (["rotary_base=-5"], "rotary_base=-5.0 must be positive"),
    (["fp8_grad_scale=0"], "fp8_grad_scale=0.0 must be positive"),
    (["sample_tokens=-1"], "sample_tokens=-1 must be >= 0"),
    (["no_attn_layers=[7]"], "no_attn_layers=[7] must name existing layers, 0..5"),
    (["window_pattern=LSS"], "(one letter a layer: L for the long window, S for the short)"),
])
def test_impossible_combinations(items, fragment):
    """Each refused in one line that names the recipe and the culprit."""
    msg = _error("tiny", items)
    assert msg.startswith("recipe tiny:") and fragment in msg and "\n" not in msg, msg


@pytest.mark.parametrize("world_size", [3, 5, 16])
def test_batch_not_divisible_by_world_size(r21, world_size):
    with pytest.raises(RecipeError) as info:
        r21.grad_accum_steps(world_size)
    msg = str(info.value)
    assert "\n" not in msg and f"world size {world_size}" in msg and "batch_tokens=393216" in msg


def test_val_not_divisible_by_world_size(r21):
    with pytest.raises(RecipeError, match="val_tokens=10485760"):
        r21.val_batches(3)


LATER_RECORD_FIELDS_OFF = dict(no_mlp_layers=[], smear=False, attn_gate=False, fused_head_loss=False, fp8_mlp=False,
                               orthogonalizer="newton_schulz", normuon_beta2=0.0, mtp_weights=[])


def test_record21_keeps_every_later_record_idea_off(r21):
    for key, off in LATER_RECORD_FIELDS_OFF.items():
        assert getattr(r21, key) == off, key


def test_fast_differs_from_record21_only_in_its_stated_fields(r21):
    fast = load_recipe("fast")
    differ = {k for k, v in fast.to_dict().items() if v != r21.to_dict()[k]}
    assert differ == {"name", "description", "no_mlp_layers", "smear", "attn_gate", "fused_head_loss", "fp8_mlp",
                      "mtp_weights", "orthogonalizer", "normuon_beta2", "muon_lr", "steps", "cooldown_frac",
                      "key_offset", "fp8_mlp_scaling", "no_attn_layers", "tied_head", "sampled_head_rows"}
    assert (fast.fp8_mlp, fast.fp8_mlp_scaling, fast.mtp_weights, fast.mtp_end_frac, fast.key_offset, fast.muon_lr,
            fast.tied_head, fast.sampled_head_rows, fast.sampled_head_end_frac, fast.steps) == (
        True, "delayed", [0.5, 0.25], 0.5, True, 0.04, True, 12288, 0.93, 1000)
    assert fast.no_mlp_layers == [0] and fast.no_attn_layers == [0, 7]  # layer 0: residual scalars only
    fast_1gpu = load_recipe("fast_1gpu")
    differ = {k for k, v in fast_1gpu.to_dict().items() if v != fast.to_dict()[k]}
    assert differ == {"name", "description", "batch_tokens", "train_loop"}


def test_mtp_fields():
    r = load_recipe("tiny", ["mtp_weights=[0.5, 0.25, 0.125]", "mtp_end_frac=1"])
    assert r.mtp_weights == [0.5, 0.25, 0.125] and r.mtp_end_frac == 1.0
    assert load_recipe("tiny", ["mtp_weights=[0, 1]"]).mtp_weights == [0.0, 1.0]  # ints become floats
    msg = _error("tiny", ["mtp_weights=0.5"])
    assert msg.startswith("--set mtp_weights:") and "is not a valid" in msg


# --- widths and heads, as a nanoGPT user changes them --------------------------------------------------------------
@pytest.mark.parametrize("items, want", [
    (["model_dim=256"], (256, 2, 128, 1024)),  # head_dim and mlp_hidden follow the width
    (["num_heads=4"], (128, 4, 32, 512)),
    (["model_dim=256", "num_heads=4"], (256, 4, 64, 1024)),
    (["model_dim=256", "mlp_hidden=768"], (256, 2, 128, 768)),  # what is given stays as given
])
def test_width_and_heads_derive_head_dim_and_mlp(items, want):
    r = load_recipe("tiny", items)
    assert (r.model_dim, r.num_heads, r.head_dim, r.mlp_hidden) == want


def test_width_in_a_recipe_file_derives_too(tmp_path):
    path = tmp_path / "wide.toml"
    path.write_text('base = "tiny"\nmodel_dim = 192\nnum_heads = 3\n')
    r = load_recipe(str(path))
    assert (r.model_dim, r.num_heads, r.head_dim, r.mlp_hidden) == (192, 3, 64, 768)


@pytest.mark.parametrize("name", ["a/b", "../../escaped", "", ".hidden", "a\\b"])
def test_a_name_that_would_leave_the_output_folders_is_refused(name):
    """The name is part of the log's and checkpoints' file names: a '/' would make folders, '..' leave them."""
    with pytest.raises(RecipeError, match="names the run's log and checkpoint files: give a non-empty name"):
        load_recipe("tiny", [f"name={name}"])
    assert load_recipe("tiny", ["name=my run-2.b"]).name == "my run-2.b"


def test_a_recipe_file_that_is_not_text_is_one_line(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe steps = 3")
    with pytest.raises(RecipeError, match=r"binary.toml: not UTF-8 text \(byte 0xff at offset 0\)"):
        load_recipe(str(path))
