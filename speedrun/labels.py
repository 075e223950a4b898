"""Group labels for `speedrun stats`, `plot` and `records`: the recipe's name, the fields a run changed from the
recipe of that name, and the code that ran. Its `runs` are speedrun.stats.Run objects (not imported: stats imports
this module)."""

from __future__ import annotations

import json
import re

# Left out of a label unless they tell two groups apart (see label_settings): the name is the label's first word;
# the validation size rarely changes; runs of other seeds are one group. The data files do show: runs on the demo
# corpus and on data/mine must differ.
UNLABELLED_FIELDS = {"val_tokens", "name", "description", "seed"}


def group_label(runs: list, settings: str) -> str:
    """The recipe, the settings that tell the group apart, and its version: one commit, or where the same code ran
    under several (one group by Run.group), each commit and the code's hash."""
    versions = list(dict.fromkeys(r.version for r in runs))
    if len(versions) == 1:
        version = versions[0]
    else:
        commits = ", ".join(dict.fromkeys(short_commit(r.commit) for r in runs))
        version = f"{commits} (same code {runs[0].log.code_hash[:8]})"  # several versions: the logs hold code
    return f"{runs[0].recipe}{' ' + settings if settings else ''} @ {version}"


_SET = re.compile(r"(?:^|\s)--set(?:\s+|=)['\"]?([A-Za-z_]\w*)\s*=")  # the logged command quotes some
_DATA = re.compile(r"(?:^|\s)--data(?:\s|=)")
_RECIPE = re.compile(r"(?:^|\s)--recipe(?:\s|=)")


def changed_fields(recipe: dict, command: str | None = None) -> dict:
    """The fields of a logged recipe that differ from the recipe of that name (what a reader needs to tell runs of
    one recipe apart): as this checkout defines it, or, for a recipe file (a name this checkout does not define), the
    fields its logged `command` set (`--set KEY=...`, `--data`), with the values the log's recipe holds; {} when
    none."""
    current = _defined_recipe(str(recipe.get("name")))
    if current is None:  # the file's own values are not known here (it may have changed since), the command's are
        keys = set(_SET.findall(command or "")) | ({"train_files", "val_files"} if _DATA.search(command or "") else set())
        return {k: v for k, v in recipe.items() if k in keys and k not in UNLABELLED_FIELDS}
    return _differences(recipe, current)


def _defined_recipe(name: str) -> dict | None:
    """The values of the recipe `name` as this checkout defines it, a removed idea at its off value (a run that had
    it on is set apart by it most of all); None for a name it does not define (a recipe file's)."""
    from speedrun.recipe import RETIRED_FIELDS, RecipeError, load_recipe

    try:
        return {**load_recipe(name).to_dict(), **RETIRED_FIELDS}
    except RecipeError:
        return None


def _differences(recipe: dict, reference: dict) -> dict:
    return {k: v for k, v in recipe.items() if k not in UNLABELLED_FIELDS and k in reference and reference[k] != v}


def setting_command(run) -> str | None:
    """The logged commands that set a run's fields: its own and, for a resume (`speedrun train --resume CKPT` sets
    none), the one that started its run, in its first part's log (through resumes of resumes) unless the resume
    repeated --recipe (checked equal to the checkpoint's recipe then); None where that log is not among the inputs."""
    from speedrun.runlog import env_value

    part, commands, seen = run, [], set()
    while part is not None and part.log is not None and id(part) not in seen:
        commands.insert(0, env_value(part.log.environment, "command") or "")
        if part.log.resumed_at is None or _RECIPE.search(commands[0]):
            return " ".join(commands)
        seen.add(id(part))
        part = part.first_part
    return None


def run_fields(run) -> dict:
    """changed_fields of a run's logged recipe and setting_command."""
    from speedrun.recipe import recipe_names

    if run.log is None or run.log.source != "speedrun":  # an upstream log's name is no recipe of ours
        return {}
    command = setting_command(run)
    if command is None and _defined_recipe(str(run.log.recipe.get("name"))) is None:
        # A recipe file's resume without its first part's log: which values were --set is logged nowhere else, and
        # the file (unnamed in the resume's log, and maybe changed since) is no reference. The log's recipe section
        # is exactly what the run ran with: shown as it differs from the bundled recipe nearest it (the file's base,
        # most likely), the file's own values and the --set ones alike.
        return min((_differences(run.log.recipe, _defined_recipe(n)) for n in recipe_names()), key=len)
    return changed_fields(run.log.recipe, command)


def format_fields(fields: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


def label_settings(runs: list) -> tuple[dict[tuple[str, str, str], str], str]:
    """(Run.group -> the settings its label shows, the settings every group shares). A label shows changed_fields,
    plus, where groups of one recipe name would still look alike (they differ in a field changed_fields leaves out,
    or their recipe is not defined in this checkout), every field that tells them apart; less what every group of
    several shows alike (a comparison's data files, say), which is said once instead."""
    shown = _shown_fields(runs)
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    first, *rest = shown.values() if shown else [{}]
    common = {f: v for f, v in first.items() if rest and all(f in g and same(g[f], v) for g in rest)}
    labels = {key: format_fields({f: v for f, v in fields.items() if f not in common}) for key, fields in shown.items()}
    return labels, format_fields(common)


def _shown_fields(runs: list) -> dict[tuple[str, str, str], dict]:
    from speedrun.recipe import DEFAULTS, RETIRED_FIELDS

    first: dict = {}  # each group's first run whose commands say what it set, else its first run
    for r in runs:
        if r.group not in first or setting_command(first[r.group]) is None and setting_command(r) is not None:
            first[r.group] = r
    shown = {key: run_fields(r) for key, r in first.items()}
    alike: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for key, r in first.items():  # the commit is left out: it shows in the stats labels, and per-run lines differ
        alike.setdefault((r.recipe, format_fields(shown[key])), []).append(key)
    # a field a log predates reads as its default (or a removed idea's off value): not a difference to show
    defaults = {**RETIRED_FIELDS, **DEFAULTS}
    for keys in alike.values():
        values = {k: {**defaults, **json.loads(k[2])} for k in keys}
        names = sorted(set().union(*values.values()) - {"name", "description"})
        differ = [f for f in names if len({json.dumps(v.get(f), sort_keys=True) for v in values.values()}) > 1]
        for k in keys:
            shown[k] = {**shown[k], **{f: values[k].get(f, "(not logged)") for f in differ if f not in shown[k]}}
    return shown


def short_commit(commit: str) -> str:
    """'<40 hex> (modified)' -> the first 10 hex digits and '*'."""
    m = re.fullmatch(r"([0-9a-f]{7,40})( \(modified\))?", commit)
    return (m[1][:10] + ("*" if m[2] else "")) if m else commit
