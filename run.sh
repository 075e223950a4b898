#!/usr/bin/env bash
# Reproduce record 21: download the cached FineWeb shards it needs, then train on all GPUs of this machine.
#   bash run.sh            (8 x H100: the record's setup; fewer GPUs keep the same global batch by accumulation)
set -euo pipefail
cd "$(dirname "$0")"
NPROC=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}
if [ "$NPROC" -lt 1 ]; then echo "run.sh: no NVIDIA GPU found (nvidia-smi -L lists none)" >&2; exit 2; fi
speedrun data fineweb --variant 10B --train-shards 8 --dir data/fineweb10B
exec speedrun train --recipe record21 --nproc "$NPROC" "$@"
