"""The skips between blocks (`skip_pairs`; by default the U-net) and the blocks' residual lambda init
(`block_lambda_init`), upstream record 45's "refined skips" as recipe fields."""

import pytest
import torch

from speedrun.recipe import RecipeError
from tests.test_model import build, random_tokens, randomize_, small_recipe


def block_calls(model, x):
    """Each block's (input, output) in one forward pass without gradients."""
    calls = {}
    hooks = [b.register_forward_hook(lambda m, args, out, i=i: calls.__setitem__(i, (args[0], out)))
             for i, b in enumerate(model.blocks)]
    try:
        with torch.no_grad():
            model(x, None, 8)
    finally:
        for h in hooks:
            h.remove()
    return calls


def test_explicit_skip_pairs_add_each_source_output_to_its_target_input():
    pairs = [[0, 3], [1, 4], [1, 5]]
    model = randomize_(build(small_recipe(attn_block_size=32, skip_pairs=pairs))).eval()
    assert len(model.blocks) == 6 and model.skip_weights.shape == (3,)
    with torch.no_grad():
        model.skip_weights.copy_(torch.tensor([0.7, -1.3, 2.1]))
    calls = block_calls(model, random_tokens(256, 61, eot_at=[0, 100]))
    for i in range(1, 6):
        want = calls[i - 1][1] + sum((model.skip_weights[k] * calls[src][1] for k, (src, dst) in enumerate(pairs)
                                      if dst == i), torch.zeros(()))
        torch.testing.assert_close(calls[i][0], want, atol=1e-6, rtol=1e-6)
    assert torch.equal(calls[2][0], calls[1][1])  # no skip into block 2


def test_the_default_skips_are_the_unet_pairs():
    x, y = random_tokens(256, 62, eot_at=[0]), random_tokens(256, 63)
    default = randomize_(build(small_recipe(attn_block_size=32))).eval()
    explicit = build(small_recipe(attn_block_size=32, skip_pairs=[[2, 3], [1, 4], [0, 5]])).eval()
    explicit.load_state_dict(default.state_dict())
    with torch.no_grad():
        default.skip_weights.copy_(torch.tensor([0.5, 1.5, -0.5]))
        explicit.skip_weights.copy_(default.skip_weights)
        assert torch.equal(default(x, y, 8), explicit(x, y, 8))


def test_block_lambda_init():
    model = build(small_recipe(block_lambda_init=1.1))
    assert all(b.lambdas.tolist() == pytest.approx([1.1, 0.0]) for b in model.blocks)
    assert all(b.lambdas.tolist() == [1.0, 0.0] for b in build(small_recipe()).blocks)


@pytest.mark.parametrize("pairs", [[[3, 3]], [[4, 2]], [[0]], [[0, 6]], [[-1, 2]]])
def test_bad_skip_pairs_are_refused(pairs):
    with pytest.raises(RecipeError, match="skip_pairs"):
        small_recipe(skip_pairs=pairs)
