"""Every commit that we name as holding removed code is in main's history: the one-line error for a retired recipe
field says `git show COMMIT`, and the experiments table's "Removed from the code" rows say "code in COMMIT". A commit
that lives only on a candidate branch is lost with the branch (part 57 found seven such rows), so a measured and
removed candidate is recorded on main with `git merge -s ours BRANCH`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from speedrun.recipe import RETIRED_AT, RETIRED_COMMITS

REPO_DIR = Path(__file__).resolve().parents[1]
EXPERIMENTS_README = REPO_DIR / "experiments" / "2026-11-25_fast-1gpu-h100" / "README.md"
CODE_IN = re.compile(r"code in \*\*`([0-9a-f]{7,40})`\*\*")


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def history():
    """Skips where the whole history cannot be read: no git, no checkout (an unpacked archive) or a shallow clone."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shallow = git("rev-parse", "--is-shallow-repository")
    if shallow.returncode != 0:
        pytest.skip("not a git checkout")
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone holds only part of the history")


def not_in_history(commits: set[str]) -> list[str]:
    return sorted(c for c in commits if git("merge-base", "--is-ancestor", c, "HEAD").returncode != 0)


def test_the_retired_fields_point_at_commits_in_the_history(history):
    assert not_in_history({RETIRED_AT, *RETIRED_COMMITS.values()}) == []


def test_the_experiments_table_points_at_commits_in_the_history(history):
    commits = set(CODE_IN.findall(EXPERIMENTS_README.read_text()))
    assert len(commits) > 20  # the pattern still finds the table's rows
    assert not_in_history(commits) == []


def test_a_commit_outside_the_history_is_found(history):
    assert not_in_history({"0000000", RETIRED_AT}) == ["0000000"]
