#!/usr/bin/env bash
# Part 49, call G: Nsight Compute on the loss kernel (49,152 x 50,304, e5m2, default launch), clocks left as they are.
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-none}"; [ -z "$NCU" ] && exit 0
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1
cat > /tmp/k.py <<'PY'
import torch
from speedrun.kernels.softcap_ce import softcap_cross_entropy_with_grad
N, V = 49152, 50304
logits = (torch.randn(N, V, device="cuda") * 10).bfloat16()
t = torch.randint(0, V, (N,), device="cuda")
for _ in range(2):
    softcap_cross_entropy_with_grad(logits, t, 30.0, 7.5, 10.0, torch.float8_e5m2)
torch.cuda.synchronize()
PY
timeout 150 $NCU --clock-control none -k regex:_softcap_ce_kernel -s 1 -c 1 --section SpeedOfLight --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis --section WarpStateStats python3 /tmp/k.py 2>&1 | grep -v "^==PROF==" | tail -80
