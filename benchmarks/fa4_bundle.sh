#!/usr/bin/env bash
# FlashAttention-4 for a GPU machine that cannot reach PyPI: download flash-attn-4 and what it needs (Python 3.12,
# CUDA 13 wheels), unpack them into one tree, xz it, and split it into two halves under 64 MiB each, .fa4/a and
# .fa4/b, for two device calls in a row (each carries one; .git/info/exclude must ignore /.fa4/, /.fa4store/, /.fa4site/).
# On the device: call 1 copies .fa4/a/part.00 to /tmp/fa4store/ (the device removes ignored folders a call does not
# carry); call 2 joins the halves and unpacks them into /tmp/fa4site, then
# PYTHONPATH=$PWD:/tmp/fa4site:/tmp/fa4site/nvidia_cutlass_dsl/dsl_packages (the .pth's path, which a PYTHONPATH
# entry does not read), plus /tmp/fa4site/fallback where cuda.bindings, einops or google.protobuf is missing. Part 13
# found nvidia-cutlass-dsl-libs-core (cutlass.cute) missing from the first bundle. With internet,
# `pip install -e '.[flash]'` is all it takes.
set -euo pipefail
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --pre "${plat[@]}" -d "$work/wheels" flash-attn-4==4.0.0b36 \
    nvidia-cutlass-dsl==4.8.1 nvidia-cutlass-dsl-libs-base==4.8.1 nvidia-cutlass-dsl-libs-cu13==4.8.1 \
    nvidia-cutlass-dsl-libs-core==4.8.1 "apache-tvm-ffi>=0.1.11,<0.2" torch-c-dlpack-ext quack-kernels
# What the GPU's own environment may already have goes to fallback/, which the device script puts on the path
# only for a module that does not import there (a second cuda-bindings beside the machine's would shadow it).
python3 -m pip download -q --no-deps "${plat[@]}" -d "$work/fallback" "cuda-bindings>=13,<14" einops "protobuf<7"
mkdir -p "$work/site/fallback"
for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/site"; done
for w in "$work"/fallback/*.whl; do unzip -q -o "$w" -d "$work/site/fallback"; done
tar cf - -C "$work/site" . | xz -9 -T0 > "$work/fa4site.tar.xz"
rm -rf .fa4 && mkdir -p .fa4/a .fa4/b
split -b 45000000 -d "$work/fa4site.tar.xz" "$work/part."
[ ! -e "$work/part.02" ] || { echo "fa4_bundle: the archive needs three parts; this script moves two" >&2; exit 1; }
mv "$work/part.00" .fa4/a/ && mv "$work/part.01" .fa4/b/
sha256sum "$work/fa4site.tar.xz" | cut -c1-64 > .fa4/b/sha256
ls -l .fa4/a .fa4/b
