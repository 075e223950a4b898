"""speedrun: train GPT-2-class language models as fast as the hardware allows (NanoGPT speedrun recipes)."""

__version__ = "0.1.0"

import time as _time

PROCESS_START = _time.time()  # for "launch to first timed step", measured from the package's import

import os as _os

# Grow CUDA memory segments instead of caching fixed blocks: training rows (49,152 tokens) and validation rows
# (262,144) need differently sized buffers, which otherwise fragment the cache (seen: 59.6 GB reserved for
# 30.1 GB allocated on an H100). Set before torch touches the GPU; a user's own setting wins.
_os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
