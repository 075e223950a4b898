"""The demo corpus bundled with the package (see README.md here; rebuilt by scripts/build_demo_corpus.py)."""

import os
from pathlib import Path

from speedrun.data.shards import ShardError, resolve_shards

DEMO_DIR = Path(__file__).parent
ROLE_PATTERN = "*_{role}_*.bin"  # a folder's shards of one role, as `speedrun data tokenize` and `fineweb` name them


def role_shards(folder: Path, role: str) -> list[Path]:
    """The folder's shard files named for `role` ("train" / "val"), sorted; [] for a path that is no folder."""
    return sorted(f for f in folder.glob(ROLE_PATTERN.format(role=role)) if f.is_file()) if folder.is_dir() else []


def one_name(folder: Path, shown: str) -> None:
    """Refuse a folder whose role shards carry several names (two `speedrun data tokenize --name`s): its train
    files would be all of them, and one name's val documents may be another's train documents."""
    names = sorted({f.name.rsplit(f"_{role}_", 1)[0] for role in ("train", "val") for f in role_shards(folder, role)})
    if len(names) > 1:
        pick = os.path.join(shown, names[-1])
        raise ShardError(f"{shown}: holds the shards of {len(names)} names ({', '.join(names)}), which would train on "
                         f"all of them; keep one name per folder, or pick one: --set 'train_files={pick}_train_*.bin' "
                         f"--set 'val_files={pick}_val_*.bin'")


def data_files(spec: str, role: str) -> list[Path]:
    """Shard paths for a recipe's train_files / val_files (role "train" / "val"): "demo" means the bundled corpus's
    `role` shard; a folder holding `*_{role}_*.bin` files (tokenize's and fineweb's names), those only, so that
    validation on `speedrun data tokenize`'s folder never scores its train shards; other folders all their `*.bin`."""
    if not str(spec).strip():
        raise ShardError(f"{role}_files is empty: give a shard file, a folder, a glob or \"demo\"")
    if spec == "demo":
        return resolve_shards(DEMO_DIR / f"demo_{role}_000000.bin")
    folder = Path(os.path.expanduser(str(spec)))
    if shards := role_shards(folder, role):
        one_name(folder, str(spec))
        return shards
    return resolve_shards(spec)
