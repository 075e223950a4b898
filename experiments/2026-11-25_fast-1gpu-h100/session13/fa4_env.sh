# Sourced by callB.sh and nextB.sh: join the two halves (callA.sh parked the first in /tmp), unpack them into
# /tmp/fa4site once, and put FlashAttention-4 on PYTHONPATH (its fallback folder only where the machine lacks a module).
S=/tmp/fa4site
if [ ! -d $S/flash_attn ]; then
  # a fresh machine (the last one went back after 30 s idle) has no first half: run callA.sh again, then this at once
  [ -f /tmp/fa4store/part.00 ] || { echo "fa4_env: /tmp/fa4store/part.00 missing (new machine?): run callA.sh first" >&2; exit 3; }
  cat /tmp/fa4store/part.00 .fa4/b/part.01 > /tmp/fa4.tar.xz
  echo "sha256 $(sha256sum /tmp/fa4.tar.xz | cut -c1-64) want $(cat .fa4/b/sha256)"
  mkdir -p $S && xz -dc /tmp/fa4.tar.xz | tar x -C $S
fi
export PYTHONPATH=$PWD:$S:$S/nvidia_cutlass_dsl/dsl_packages
for m in cuda.bindings.driver einops google.protobuf; do
  python3 -c "import $m" 2>/dev/null && echo "$m: the machine's" || { echo "$m: the bundle's"; FB=1; }
done
[ -z "${FB:-}" ] || export PYTHONPATH=$PYTHONPATH:$S/fallback
