"""What `speedrun.build` hands the trainer: the model compiled with Inductor options this torch knows, or eager."""

import torch
import torch._inductor.config

from speedrun.build import INDUCTOR_OPTIONS, build_model, compiled_runner
from speedrun.plan import make_plan
from speedrun.recipe import load_recipe


def test_the_compiled_model_gets_inductor_options_this_torch_knows(monkeypatch):
    # torch.compile refuses an unknown option only at the first call, on the GPU: a renamed option would stop a
    # launch after setup, so the names are checked here against this torch's Inductor config.
    known = torch._inductor.config.get_config_copy()
    assert INDUCTOR_OPTIONS and all(key in known for key in INDUCTOR_OPTIONS), sorted(INDUCTOR_OPTIONS)
    seen = {}
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: seen.update(kwargs, model=model) or "compiled")
    r = load_recipe("tiny", ["compile=on"])
    plan = make_plan(r, force_device="cpu")
    model = build_model(r, plan)
    assert plan.compile and compiled_runner(model, plan) == "compiled"
    assert seen == {"model": model, "dynamic": False, "options": INDUCTOR_OPTIONS}


def test_without_compile_the_model_runs_as_it_is():
    r = load_recipe("tiny", ["compile=off"])
    plan = make_plan(r, force_device="cpu")
    model = build_model(r, plan)
    assert compiled_runner(model, plan) is model
