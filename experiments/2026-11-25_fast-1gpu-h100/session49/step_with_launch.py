"""Part 49: benchmarks/step_time.py with the byte transpose kernel's launch set first (tile rows, tile columns, warps),
so that a call can time the step with the launch its micro-benchmark found fastest.

    python step_with_launch.py BLOCK_M BLOCK_N WARPS [step_time.py's arguments]
"""

import runpy
import sys

import speedrun.kernels.transpose as transpose

block_m, block_n, warps = map(int, sys.argv[1:4])
transpose.LAUNCH.update(block_m=block_m, block_n=block_n, num_warps=warps)
print(f"transpose launch: {transpose.LAUNCH} ({transpose.__file__})", flush=True)
sys.argv = ["benchmarks/step_time.py", *sys.argv[4:]]
sys.path.insert(0, "benchmarks")
runpy.run_path("benchmarks/step_time.py", run_name="__main__")
