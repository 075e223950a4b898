"""The demo corpus bundled with the package (see README.md here; rebuilt by scripts/build_demo_corpus.py)."""

from pathlib import Path

from speedrun.data.shards import resolve_shards

DEMO_DIR = Path(__file__).parent


def data_files(spec: str, role: str) -> list[Path]:
    """Shard paths for a recipe's train_files / val_files: "demo" means the bundled corpus's `role` shard."""
    return resolve_shards(DEMO_DIR / f"demo_{role}_000000.bin" if spec == "demo" else spec)
