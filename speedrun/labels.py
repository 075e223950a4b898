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


def changed_fields(recipe: dict, command: str | None = None) -> dict:
    """The fields of a logged recipe that differ from the recipe of that name (what a reader needs to tell runs of
    one recipe apart): as this checkout defines it, or, for a recipe file (a name this checkout does not define), the
    fields its logged `command` set (`--set KEY=...`, `--data`), with the values the log's recipe holds; {} when
    none."""
    from speedrun.recipe import RETIRED_FIELDS, RecipeError, load_recipe

    try:
        current = load_recipe(str(recipe.get("name"))).to_dict()
    except RecipeError:  # the file's own values are not known here (it may have changed since), the command's are
        keys = set(_SET.findall(command or "")) | ({"train_files", "val_files"} if _DATA.search(command or "") else set())
        return {k: v for k, v in recipe.items() if k in keys and k not in UNLABELLED_FIELDS}
    # a removed idea that the run had on is what sets it apart most of all
    current.update(RETIRED_FIELDS)
    return {k: v for k, v in recipe.items() if k not in UNLABELLED_FIELDS and k in current and current[k] != v}


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
    from speedrun.runlog import env_value

    first = {r.group: r for r in reversed(runs)}  # the first run of each group
    # an upstream log's name is no recipe of ours
    shown = {key: changed_fields(r.log.recipe, env_value(r.log.environment, "command"))
             if r.log is not None and r.log.source == "speedrun" else {} for key, r in first.items()}
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
