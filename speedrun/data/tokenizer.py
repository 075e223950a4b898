"""GPT-2 BPE through tiktoken, built offline from the BPE files bundled in the package."""

import functools
import os
from pathlib import Path

EOT = 50256  # <|endoftext|>, placed before every document
VOCAB_SIZE = 50257
BPE_DIR = Path(__file__).parent / "gpt2"
# GPT-2's pre-tokenisation regex (the same one tiktoken uses for "gpt2" / "r50k_base").
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@functools.cache
def gpt2():
    """tiktoken's GPT-2 encoding, built from the bundled files; never touches the network."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    # An empty cache dir makes tiktoken read the local files directly instead of copying them into a cache.
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(str(BPE_DIR / "vocab.bpe"), str(BPE_DIR / "encoder.json"))
    finally:
        os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        if saved is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT}, explicit_n_vocab=VOCAB_SIZE)


def encode_document(text: str) -> list[int]:
    """Tokens of one document as the shards hold it: <|endoftext|> first, then the text's BPE."""
    return [EOT] + gpt2().encode_ordinary(text)


def decode(tokens) -> str:
    return gpt2().decode([int(t) for t in tokens])
