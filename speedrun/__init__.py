"""speedrun: train GPT-2-class language models as fast as the hardware allows (NanoGPT speedrun recipes)."""

__version__ = "0.1.0"

import time as _time

PROCESS_START = _time.time()  # for "launch to first timed step", measured from the package's import
