"""Turning model outputs into token sequences: greedy and beam search over a decoder, CTC best path.

Scores are length-normalised log-probabilities: the mean log-probability of the emitted tokens plus the
end token (for CTC, the mean of the best frame log-probabilities), so `exp(score)` is a confidence in
[0, 1] that does not favour short lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vihtr.text.charset import EOS, MASK, PAD, SOS, SPECIAL_TOKENS

BLANK = 0  # CTC blank, shared with PAD
FIRST_CHAR_ID = len(SPECIAL_TOKENS)
NEVER_EMITTED = [PAD, SOS, MASK]  # input-only tokens: a decoder emits characters or EOS
# how a line is read: the attention decoder greedily or by beam search, or the CTC head's columns
DECODE_METHODS = ("greedy", "beam", "ctc")


def default_method(has_decoder: bool) -> str:
    """A model's own decoding: its attention decoder greedily, or CTC for a model without one."""
    return "greedy" if has_decoder else "ctc"


def check_method(method: str) -> str:
    if method not in DECODE_METHODS:
        raise ValueError(f"unknown decoding method {method!r}: one of {', '.join(DECODE_METHODS)}")
    return method


def _next_log_probs(decoder, state, prev: torch.Tensor):
    log_probs, state = decoder.step(state, prev)
    log_probs[:, NEVER_EMITTED] = float("-inf")
    return log_probs, state


@dataclass
class DecodeResult:
    """Per line: token ids without start/end tokens, the probability of each, and the line's score."""

    token_ids: list[list[int]]
    token_probs: list[list[float]]
    scores: list[float]


@torch.no_grad()
def greedy_decode(decoder, memory: torch.Tensor, memory_mask: torch.Tensor, max_len: int) -> DecodeResult:
    """Most likely token at each step; lines that emitted the end token leave the batch, so a batch
    costs as many steps as its longest line."""
    b = memory.shape[0]
    state = decoder.init_state(memory, memory_mask)
    prev = torch.full((b,), SOS, dtype=torch.long, device=memory.device)
    alive = list(range(b))
    token_ids: list[list[int]] = [[] for _ in range(b)]
    token_logps: list[list[float]] = [[] for _ in range(b)]
    end_logp: list[float | None] = [None] * b  # None: no end token within max_len
    for _ in range(max_len):
        log_probs, state = _next_log_probs(decoder, state, prev)
        logp, tokens = log_probs.max(dim=-1)
        ended = tokens == EOS
        for row, tok, lp, stop in zip(alive, tokens.tolist(), logp.tolist(), ended.tolist()):
            if stop:
                end_logp[row] = lp
            else:
                token_ids[row].append(tok)
                token_logps[row].append(lp)
        if ended.any():
            keep = (~ended).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            state = decoder.reorder_state(state, keep)
            alive = [alive[i] for i in keep.tolist()]
            tokens = tokens[keep]
        prev = tokens
    scores = []
    for lps, end in zip(token_logps, end_logp):
        closing = [] if end is None else [end]
        scores.append(sum(lps + closing) / max(1, len(lps) + len(closing)))
    return DecodeResult(token_ids, [[math.exp(lp) for lp in lps] for lps in token_logps], scores)


@torch.no_grad()
def beam_search(
    decoder,
    memory: torch.Tensor,
    memory_mask: torch.Tensor,
    max_len: int,
    beam_size: int = 4,
) -> DecodeResult:
    """Batched beam search (fairseq's scheme): each step ranks the 2k best extensions of a line's beams;
    an end token among the top k closes a hypothesis, the best k others stay open. A line is done when
    k hypotheses are closed; the best by length-normalised score wins. With k = 1 this is greedy."""
    b, k = memory.shape[0], beam_size
    device = memory.device
    state = decoder.init_state(memory, memory_mask)
    state = decoder.reorder_state(state, torch.arange(b, device=device).repeat_interleave(k))
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    tokens = torch.zeros(b * k, 0, dtype=torch.long, device=device)
    token_logps = torch.zeros(b * k, 0, device=device)
    prev = torch.full((b * k,), SOS, dtype=torch.long, device=device)
    # per line: (length-normalised score, token ids, token probabilities)
    finished: list[list[tuple[float, list[int], list[float]]]] = [[] for _ in range(b)]
    done = [False] * b
    row_offset = torch.arange(b, device=device)[:, None] * k
    for _ in range(max_len):
        log_probs, state = _next_log_probs(decoder, state, prev)
        vocab = log_probs.shape[1]
        total = (scores.view(-1, 1) + log_probs).view(b, k * vocab)
        cand_scores, cand_index = total.topk(2 * k, dim=1)
        cand_beam, cand_token = cand_index // vocab, cand_index % vocab
        is_eos = cand_token == EOS
        eos_rows = (row_offset + cand_beam)[:, :k]
        for i, j in is_eos[:, :k].nonzero().tolist():
            if done[i] or len(finished[i]) >= k:
                continue
            row = int(eos_rows[i, j])
            length = tokens.shape[1] + 1
            finished[i].append(
                (float(cand_scores[i, j]) / length, tokens[row].tolist(), token_logps[row].exp().tolist())
            )
        done = [d or len(f) >= k for d, f in zip(done, finished)]
        if all(done):
            break
        # the k best candidates that do not end (there are at most k end tokens among 2k)
        order = (is_eos.long() * (2 * k) + torch.arange(2 * k, device=device)).argsort(dim=1)[:, :k]
        beam = cand_beam.gather(1, order)
        prev = cand_token.gather(1, order).view(-1)
        scores = cand_scores.gather(1, order)
        rows = (row_offset + beam).view(-1)
        state = decoder.reorder_state(state, rows)
        chosen_logp = log_probs[rows, prev]
        tokens = torch.cat([tokens[rows], prev[:, None]], dim=1)
        token_logps = torch.cat([token_logps[rows], chosen_logp[:, None]], dim=1)
    for i in range(b):
        if not done[i]:  # max_len reached: open beams count as they are
            length = max(1, tokens.shape[1])
            for j in range(k):
                row = i * k + j
                finished[i].append(
                    (float(scores[i, j]) / length, tokens[row].tolist(), token_logps[row].exp().tolist())
                )
    best = [max(f, key=lambda h: h[0]) for f in finished]
    return DecodeResult([h[1] for h in best], [h[2] for h in best], [h[0] for h in best])


@torch.no_grad()
def run_decoder(
    method: str, decoder, memory: torch.Tensor, memory_mask: torch.Tensor, max_len: int, beam_size: int = 4
) -> DecodeResult:
    """An autoregressive decoder's reading by `method` ("greedy" or "beam"): one model's decoder or an
    ensemble's lock-step of several, which share the decoder API (the module docstring of `decoders`)."""
    if method == "greedy":
        return greedy_decode(decoder, memory, memory_mask, max_len)
    if method == "beam":
        return beam_search(decoder, memory, memory_mask, max_len, beam_size)
    raise ValueError(f"{method!r} is not an autoregressive decoding method")


def ctc_best_path(ctc_logits: torch.Tensor, memory_mask: torch.Tensor) -> DecodeResult:
    """Most likely class per column, repeats merged and blanks dropped. A character's probability is the
    highest of the columns it spans; special ids (never CTC targets) act like blanks."""
    logits = ctc_logits.float()
    best_logit, best = logits.max(dim=-1)
    best_p = (best_logit - logits.logsumexp(dim=-1)).exp()  # the softmax of the best class only
    lengths = (~memory_mask).sum(dim=1).tolist()
    result = DecodeResult([], [], [])
    for ids, probs, n in zip(best.tolist(), best_p.tolist(), lengths):
        out_ids: list[int] = []
        out_probs: list[float] = []
        prev = BLANK
        for tok, p in zip(ids[:n], probs[:n]):
            if tok >= FIRST_CHAR_ID:
                if tok != prev:
                    out_ids.append(tok)
                    out_probs.append(p)
                else:
                    out_probs[-1] = max(out_probs[-1], p)
            prev = tok
        result.token_ids.append(out_ids)
        result.token_probs.append(out_probs)
        result.scores.append(sum(math.log(max(p, 1e-30)) for p in probs[:n]) / max(1, n))
    return result
