"""Value embeddings tied (the record: the last k layers reuse the first k layers' tables) or untied (their own)."""

import torch

from speedrun.model.gpt import GPT
from speedrun.recipe import load_recipe


def test_untied_value_embeds_give_the_last_layers_tables_of_their_own():
    r = load_recipe("tiny", {"untied_value_embeds": True, "no_attn_layers": [2]})  # tiny's layer 4 needs attention
    torch.manual_seed(0)
    model = GPT(r)
    k = r.value_embeds
    assert len(model.value_embeds) == 2 * k
    assert model.ve_table == [0, 1, None, None, 2, 3]
    for name, p in model.named_parameters():  # zero-initialised outputs would pass no gradient down
        if "c_proj" in name or "lm_head" in name:
            torch.nn.init.normal_(p, std=0.02)
    tokens = torch.randint(0, 50000, (r.seq_len + 1,))
    model(tokens[:-1], tokens[1:], 8).backward()
    # every table is read by exactly one layer, so every table gets a gradient
    assert all(t.weight.grad is not None and t.weight.grad.abs().sum() > 0 for t in model.value_embeds)
    tied = GPT(load_recipe("tiny"))
    assert len(tied.value_embeds) == k and tied.ve_table == [0, 1, None, None, 0, 1]


def test_untied_value_embeds_refuse_a_table_no_attention_reads():
    import pytest

    from speedrun.recipe import RecipeError

    with pytest.raises(RecipeError, match="untied_value_embeds"):
        load_recipe("tiny", {"untied_value_embeds": True})  # layer 4 has no attention and would own table 2
