"""Multi-token prediction as extra targets of the same cross-entropy (a later speedrun record's idea).

In training, position i is also scored against the tokens 2, 3, ... K positions ahead, from the same soft-capped
logits z_i, each term weighted by w_k (lowered to 0 over the run: the final model predicts the next token alone):

    loss = mean_i [ CE(z_i, targets[i]) + sum_{k=2..K} w_k * CE(z_i, targets[i + k - 1]) ]

An extra term exists only where its token lies in the row (i + k - 1 < T) and in the same document: none of
targets[i .. i + k - 2] is <|endoftext|>, which starts the next document.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from speedrun.data.tokenizer import EOT


def mtp_targets(targets: Tensor, num_extra: int) -> Tensor:
    """targets (T,) next tokens of one row -> (T, num_extra) int64: column j holds targets[i + j + 1], the
    target at offset +(j + 2), or -1 where that token lies past the row's end or past an end of document."""
    T = targets.numel()
    targets = targets.reshape(T).long()
    # eots[m]: <|endoftext|> tokens among targets[:m], so targets[i .. i + s - 1] hold eots[i + s] - eots[i]
    eots = F.pad(torch.cumsum(targets == EOT, 0), (1, 0))
    cols = []
    for s in range(1, num_extra + 1):
        n = max(T - s, 0)
        same_doc = eots[s : s + n] == eots[:n]
        cols.append(F.pad(torch.where(same_doc, targets[s : s + n], -1), (0, T - n), value=-1))
    return torch.stack(cols, 1) if cols else targets.new_empty(T, 0)


def mtp_cross_entropy(logits: Tensor, targets: Tensor, extra: Tensor, weights: Tensor) -> Tensor:
    """logits (T, V), targets (T,), extra (T, J) from `mtp_targets`, weights (J,) -> the mean over T of each
    position's next-token cross-entropy plus its weighted extra terms. One log-softmax serves every target; the
    next-token part is exactly F.cross_entropy (log_softmax + nll_loss): weights of 0 give it bit for bit."""
    logp = F.log_softmax(logits.float(), dim=-1)
    main = F.nll_loss(logp, targets)
    w = torch.where(extra >= 0, weights.to(logp.dtype)[None, :], 0.0)  # (T, J): 0 where there is no target
    aux = -(w * logp.gather(1, extra.clamp(min=0))).sum() / logits.size(0)
    return main + aux
