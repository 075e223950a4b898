"""Counted nouns in messages: `plural(1, "file")` -> '1 file', `plural(1200, "file")` -> '1,200 files'."""


def plural(n: int, noun: str, many: str | None = None) -> str:
    return f"{n:,} {noun if n == 1 else many or noun + 's'}"
