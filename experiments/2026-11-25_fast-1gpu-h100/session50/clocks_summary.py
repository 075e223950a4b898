"""Part 50: nvidia-smi's samples (call.sh clocks) summarised: the SM clock and power while the GPU is busy (power above
half the limit), and how often each clock-event reason was active then.

    python clocks_summary.py smi.csv
"""

import statistics
import sys

rows = []
for line in open(sys.argv[1]):
    f = [x.strip() for x in line.split(",")]
    if len(f) < 9:
        continue
    try:
        rows.append(dict(clock=float(f[1]), max_clock=float(f[2]), power=float(f[3]), limit=float(f[4]),
                         temp=float(f[5]), power_cap=f[6] == "Active", hw_slowdown=f[7] == "Active",
                         thermal=f[8] == "Active"))
    except ValueError:
        continue
busy = [r for r in rows if r["power"] > 0.5 * r["limit"]]
print(f"{len(rows)} samples, {len(busy)} busy (power > half the limit)")
if busy:
    q = lambda k: statistics.quantiles([r[k] for r in busy], n=10)
    print(f"SM clock MHz: median {statistics.median(r['clock'] for r in busy):.0f}, 10%-90% {q('clock')[0]:.0f}-"
          f"{q('clock')[-1]:.0f}, max allowed {busy[0]['max_clock']:.0f}")
    print(f"power W: median {statistics.median(r['power'] for r in busy):.0f}, 90% {q('power')[-1]:.0f}, "
          f"limit {busy[0]['limit']:.0f}; temperature max {max(r['temp'] for r in busy):.0f} C")
    for k in ("power_cap", "hw_slowdown", "thermal"):
        print(f"{k} active in {sum(r[k] for r in busy)} of {len(busy)} busy samples")
