"""speedrun: train GPT-2-class language models as fast as the hardware allows (NanoGPT speedrun recipes)."""

__version__ = "0.1.0"
