"""benchmarks/step_time.py under Inductor settings given as JSON (part 48): python3 inductor_knobs.py JSON [step_time args].

JSON maps dotted names of torch._inductor.config to values, e.g. '{"combo_kernels": true}'; a name torch does not
have is an error, not a silent no-op. The settings are part of Inductor's cache keys, so each compiles afresh."""

import json
import sys
from pathlib import Path

import torch._inductor.config as inductor_config

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def apply(settings: dict) -> None:
    for name, value in settings.items():
        *path, last = name.split(".")
        obj = inductor_config
        for part in path:
            obj = getattr(obj, part)
        if not hasattr(obj, last):
            raise SystemExit(f"torch._inductor.config has no {name}")
        setattr(obj, last, value)
        print(f"inductor config {name} = {value!r}")


if __name__ == "__main__":
    apply(json.loads(sys.argv[1]))
    sys.path.insert(0, str(BENCHMARKS))
    import step_time

    sys.exit(step_time.main(sys.argv[2:]))
