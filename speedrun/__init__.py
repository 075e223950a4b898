"""speedrun: train GPT-2-class language models as fast as the hardware allows (NanoGPT speedrun recipes)."""

import os as _os
import time as _time

__version__ = "0.1.0"

PROCESS_START = _time.time()  # for "launch to first timed step", measured from the package's import

# Grow CUDA memory segments instead of caching fixed blocks: training rows (49,152 tokens) and validation rows
# (262,144) need differently sized buffers, which otherwise fragment the cache (seen: 59.6 GB reserved for
# 30.1 GB allocated on an H100; 45.2 GB with this). Set before torch touches the GPU; a user's setting wins.
_os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
