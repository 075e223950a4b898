"""Part 49: benchmarks/step_time.py with our kernels' default launches changed first, so that a call can time the step
with the launch its micro-benchmark found fastest.

    python step_with_launch.py '{"transpose": {"block_m": 128, "block_n": 256, "num_warps": 8}}' [step_time.py's arguments]

Each key names a module of speedrun.kernels whose LAUNCH dict is updated (an unknown setting is an error).
"""

import importlib
import json
import runpy
import sys

for module, settings in json.loads(sys.argv[1]).items():
    kernel = importlib.import_module(f"speedrun.kernels.{module}")
    unknown = set(settings) - set(kernel.LAUNCH)
    if unknown:
        sys.exit(f"{module}.LAUNCH has no {sorted(unknown)}")
    kernel.LAUNCH.update(settings)
    print(f"{module} launch: {kernel.LAUNCH} ({kernel.__file__})", flush=True)
sys.argv = ["benchmarks/step_time.py", *sys.argv[2:]]
sys.path.insert(0, "benchmarks")
runpy.run_path("benchmarks/step_time.py", run_name="__main__")
