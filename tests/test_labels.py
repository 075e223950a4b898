"""Group labels (speedrun/labels.py): a recipe file's runs are labelled with the fields their command set; a
resumed run's, whose own command sets none, with those its run was started with."""

from __future__ import annotations

from logfactory import hand_log, interrupted_and_resumed, resumed_log

from speedrun.stats import summarize

LOWLR = {"val_every": 10, "muon_lr": 0.03}  # lowlr.toml: base tiny, muon_lr 0.03; run with steps=20 val_every=10
STARTED = "speedrun train --recipe recipes/lowlr.toml --set steps=20 --set val_every=10"


def test_a_resumed_recipe_files_run_is_labelled_with_the_fields_its_first_part_set(tmp_path):
    """`speedrun train --resume CKPT` names no --set: the label reads the command that started the run, in the first
    part's log, through a resume of a resume too; given alone, the resume's log says what the run ran with."""
    folder = tmp_path / "logs"
    first, middle = interrupted_and_resumed(folder, 7.28, at=5, steps=20, name="lowlr", recipe={**LOWLR, "seed": 0},
                                            command=STARTED)
    assert list(summarize([str(folder)]).labels.values()) == ["lowlr steps=20 val_every=10 @ unknown"]
    middle.unlink()
    resumed_log(middle, 7.28, 5, first, steps=20, stop_at=10, name="lowlr", recipe={**LOWLR, "seed": 0})
    resumed_log(folder / "run_c.txt", 7.28, 10, middle, steps=20, name="lowlr", recipe={**LOWLR, "seed": 0})
    assert list(summarize([str(folder)]).labels.values()) == ["lowlr steps=20 val_every=10 @ unknown"]
    # without the first part: the logged recipe as it differs from the bundled recipe nearest it (tiny), the file's
    # own muon_lr included: which values were --set is logged nowhere else
    assert list(summarize([str(folder / "run_c.txt")]).labels.values()) == [
        "lowlr steps=20 val_every=10 muon_lr=0.03 @ unknown"]


def test_a_group_is_labelled_from_a_run_whose_command_says_what_it_set(tmp_path):
    """Runs of one group share every value: where its first run is a resume without its first part, a later run's
    command labels it, as the group would be labelled without the resume."""
    folder = tmp_path / "logs"
    _, resumed = interrupted_and_resumed(folder, 7.28, at=5, steps=20, name="lowlr", recipe={**LOWLR, "seed": 0},
                                         command=STARTED)
    (folder / "run_a.txt").unlink()
    hand_log(folder / "s1.txt", 7.29, steps=20, name="lowlr", recipe={**LOWLR, "seed": 1},
             command=f"{STARTED} --set seed=1")
    assert list(summarize([str(folder)]).labels.values()) == ["lowlr steps=20 val_every=10 @ unknown"]
    # a resume that repeats the command (`--recipe ... --resume CKPT`: checked equal to the checkpoint's) says it too
    resumed.write_text(resumed.read_text().replace("command: speedrun train", f"command: {STARTED}"))
    assert list(summarize([str(resumed)]).labels.values()) == ["lowlr steps=20 val_every=10 @ unknown"]
