"""The demo corpus bundled with the package (see README.md here; rebuilt by scripts/build_demo_corpus.py)."""

import glob
import os
import re
from pathlib import Path

from speedrun.data.shards import ShardError, resolve_shards
from speedrun.files import broken_link

DEMO_DIR = Path(__file__).parent
ROLE_PATTERN = "*_{role}_*.bin"  # a folder's shards of one role, as `speedrun data tokenize` and `fineweb` name them
# The exact name behind ROLE_PATTERN: NAME_ROLE_DIGITS.bin. NAME is greedy, so a name that itself holds `_val_` or
# `_train_` (`my_val`: my_val_train_000000.bin) still reads as one name with the role after it.
SHARD_NAME = re.compile(r"(?P<name>.+)_(?P<role>train|val)_\d+\.bin")


def role_shards(folder: Path, role: str, name: str | None = None) -> list[Path]:
    """The folder's shard files named for `role` ("train" / "val"), and for `name` where given, sorted; [] for a path
    that is no folder. Links to nothing are kept, for the shard check to name: dropped, a run would train on less."""
    if not folder.is_dir():
        return []
    matches = ((f, SHARD_NAME.fullmatch(f.name)) for f in folder.glob(ROLE_PATTERN.format(role=role)))
    return sorted(f for f, m in matches if m and m["role"] == role and name in (None, m["name"])
                  and (f.is_file() or broken_link(f)))


def name_glob(folder: str, name: str, role: str) -> str:
    """The glob of one name's shards of `role` in `folder` (as the user wrote it), for a --set or a --val."""
    # a digit after the role: `x_val_*.bin` would also take the shards of a name x_val (x_val_train_000000.bin)
    return f"{glob.escape(os.path.join(folder, name))}_{role}_[0-9]*.bin"


def one_name(folder: Path, shown: str, option: str = "set") -> str | None:
    """Refuse a folder whose role shards carry several names (two `speedrun data tokenize --name`s): its train
    files would be all of them, and one name's val documents may be another's train documents. Returns the one name
    (None: no shards). The hint picks one name in `option`'s terms: "set" (train's --set) or "val" (eval's --val)."""
    names = sorted({SHARD_NAME.fullmatch(f.name)["name"] for role in ("train", "val")
                    for f in role_shards(folder, role)})
    if len(names) > 1:
        pick = names[-1]  # the longest of names that begin alike (a, a_train): its glob matches no other's files
        hint = (f"--val '{name_glob(shown, pick, 'val')}'" if option == "val" else
                f"--set 'train_files={name_glob(shown, pick, 'train')}' --set 'val_files={name_glob(shown, pick, 'val')}'")
        raise ShardError(f"{shown}: holds the shards of {len(names)} names ({', '.join(names)}), which would "
                         f"{'score' if option == 'val' else 'train on'} all of them; keep one name per folder, or "
                         f"pick one: {hint}")
    return names[0] if names else None


def data_files(spec: str, role: str, option: str = "set") -> list[Path]:
    """Shard paths for a recipe's train_files / val_files (role "train" / "val"): "demo" means the bundled corpus's
    `role` shard; a folder holding NAME_{role}_DIGITS.bin files (tokenize's and fineweb's names), those only, so that
    validation on `speedrun data tokenize`'s folder never scores its train shards; other folders all their `*.bin`.
    `option`: how a folder of several names is told to pick one (see one_name)."""
    if not str(spec).strip():
        raise ShardError(f"{role}_files is empty: give a shard file, a folder, a glob or \"demo\"")
    if spec == "demo":
        return resolve_shards(DEMO_DIR / f"demo_{role}_000000.bin")
    folder = Path(os.path.expanduser(str(spec)))
    if shards := role_shards(folder, role):
        one_name(folder, str(spec), option)
        return shards
    return resolve_shards(spec)
