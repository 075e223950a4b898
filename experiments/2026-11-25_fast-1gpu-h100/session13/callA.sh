#!/usr/bin/env bash
# Part 13, call A (carry [".fa4/a"]): park the first half of the FlashAttention-4 bundle in /tmp, outside the checkout
# (the device's sync removes ignored folders a call does not carry, so .fa4store/ did not survive into the next call).
mkdir -p /tmp/fa4store && cp .fa4/a/part.00 /tmp/fa4store/ && ls -la /tmp/fa4store
nvidia-smi --query-gpu=name,memory.total,driver_version,uuid --format=csv,noheader
