"""Training losses and the decoder-input masking trick of the seed.

Targets are `[SOS, c1, ..., cn, EOS, PAD, ...]` rows; the decoder reads targets[:, :-1] and predicts
targets[:, 1:].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vihtr.text.charset import MASK, PAD, SOS, SPECIAL_TOKENS

FIRST_CHAR_ID = len(SPECIAL_TOKENS)


def label_smoothing_ce(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.1) -> torch.Tensor:
    """Cross entropy over non-PAD positions; the smoothed mass goes to tokens a target can be (not PAD,
    SOS or MASK), as in VietOCR's LabelSmoothingLoss."""
    logp = F.log_softmax(logits.float(), dim=-1).flatten(0, -2)
    targets = targets.reshape(-1)
    keep = targets != PAD
    logp, targets = logp[keep], targets[keep]
    if targets.numel() == 0:
        return logits.sum() * 0.0
    allowed = torch.ones(logp.shape[-1], dtype=torch.bool, device=logp.device)
    allowed[[PAD, SOS, MASK]] = False
    nll = -logp.gather(1, targets[:, None]).squeeze(1)
    smooth = -logp[:, allowed].mean(dim=-1)
    return ((1.0 - smoothing) * nll + smoothing * smooth).mean()


def ctc_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder rows (SOS ... EOS PAD ...) -> left-aligned character ids B x Lmax (0-padded) and lengths B."""
    chars = targets >= FIRST_CHAR_ID
    lengths = chars.sum(dim=1)
    # left-align the character ids of each row (a stable sort puts the kept ones first, in order)
    order = torch.sort((~chars).to(torch.uint8), dim=1, stable=True).indices
    packed = targets.gather(1, order)[:, : max(1, int(lengths.max()))]
    packed = packed.masked_fill(
        torch.arange(packed.shape[1], device=packed.device)[None] >= lengths[:, None], 0
    )
    return packed, lengths


def ctc_min_columns(packed: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Columns a CTC alignment of each row needs: one per character, plus a blank inside every doubled
    letter ("ll" cannot be read from fewer than 3 columns)."""
    repeats = (packed[:, 1:] == packed[:, :-1]) & (packed[:, 1:] != 0)
    return lengths + repeats.sum(dim=1)


def ctc_loss(
    ctc_logits: torch.Tensor,
    memory_mask: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC loss (blank = PAD = 0) with input lengths from `memory_mask`, and how many lines cannot fit.

    `targets` may be the decoder's padded rows: the special ids (SOS, EOS, PAD, MASK) are dropped and the
    lengths recounted, so `target_lengths`, when given, is only checked to be a per-line tensor. An empty
    target is allowed. A target too long for its columns has an infinite loss; it is zeroed
    (`zero_infinity`) rather than poisoning the batch, and counted in the second value, which training
    logs: such lines teach the CTC head nothing, so a model shape that makes many of them is wrong.
    """
    if target_lengths is not None and target_lengths.shape[0] != targets.shape[0]:
        raise ValueError("target_lengths must have one entry per line")
    packed, lengths = ctc_targets(targets)
    log_probs = F.log_softmax(ctc_logits.float(), dim=-1).transpose(0, 1)  # T x B x V
    input_lengths = (~memory_mask).sum(dim=1)
    infeasible = (ctc_min_columns(packed, lengths) > input_lengths).sum()
    loss = F.ctc_loss(
        log_probs, packed, input_lengths, lengths, blank=PAD, reduction="mean", zero_infinity=True
    )
    return loss, infeasible


def mask_decoder_input(
    tgt_in: torch.Tensor, prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each character token of the decoder input by MASK with probability `prob`, so the decoder
    learns to read the image rather than lean on its own previous outputs. SOS, EOS and PAD are kept."""
    noise = torch.rand(tgt_in.shape, generator=generator, device=tgt_in.device)
    return tgt_in.masked_fill((noise < prob) & (tgt_in >= FIRST_CHAR_ID), MASK)
