#!/usr/bin/env bash
# Prepared in part 14 for the next session, call A (carry [".fa4/a"]): park the first half of the FlashAttention-4
# bundle in /tmp (the device removes ignored folders a call does not carry). Then, with no pause (the machine goes
# back after 30 s idle): callB.sh, callC.sh, callD.sh, callE.sh.
mkdir -p /tmp/fa4store && cp .fa4/a/part.00 /tmp/fa4store/ && ls -la /tmp/fa4store
nvidia-smi --query-gpu=name,memory.total,driver_version,uuid --format=csv,noheader
