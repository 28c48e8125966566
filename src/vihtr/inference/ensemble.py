"""Decode several models together, the seed's way: each encoder runs once, then the decoders step in lock
step and every step picks from the models' averaged probabilities.

The ensemble is the mixture of its models: a step's log-probabilities are log(mean of the models'
probabilities). Greedy takes its argmax and beam search ranks hypotheses by it. The searches themselves
are the single model's (`vihtr.models.decoding`), run on `LockStep`, which looks to them like one decoder.

CTC models are not averaged column by column: two CTC models trained apart put a character's peak in
different columns, and their mean reads worse than either (Kalapa fold 0: 13.1 % CER from two models of
6.8-6.9 %). Each model reads the line, and the reading the models find most likely together wins: the
sum over models of log P(text | line) by the CTC forward algorithm (`rescore_ctc`; 6.29 % on the same
lines). The models may then have different column counts.

Anything with the `StepModel` methods decodes here: the torch models (through `TorchStepModel`) and the
onnxruntime graphs (`vihtr.inference.onnx_export.OnnxModel`). All models must share the charset. A single
torch model decodes with its own `OCRModel.decode`, which this lock-step code reproduces.

CTC decoding can take another search than best path (`ctc_decoder`: the address domain's beam search
with a word LM, `vihtr.inference.ctc_lm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from vihtr.models.decoding import (
    BLANK,
    DecodeResult,
    check_method,
    ctc_best_path,
    default_method,
    run_decoder,
)
from vihtr.text.charset import Charset


@dataclass
class Started:
    """A model after its encoder ran: a decoder state and/or CTC log-probs, and its real column counts."""

    lengths: torch.Tensor  # B
    state: Any = None
    ctc_log_probs: torch.Tensor | None = None  # B x T x V


class StepModel(Protocol):
    charset: Charset
    max_len: int
    has_decoder: bool
    has_ctc: bool

    def start(self, images: torch.Tensor, widths: torch.Tensor, decoder: bool, ctc: bool) -> Started: ...

    def step(self, state: Any, prev_tokens: torch.Tensor) -> tuple[torch.Tensor, Any]: ...

    def reorder(self, state: Any, index: torch.Tensor) -> Any: ...


class TorchStepModel:
    """An `OCRModel` seen through the `StepModel` methods."""

    def __init__(self, model, device: str = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        self.charset = model.charset
        self.max_len = int(model.max_len)
        self.has_decoder = model.decoder is not None
        self.has_ctc = model.ctc_head is not None

    def start(self, images: torch.Tensor, widths: torch.Tensor, decoder: bool, ctc: bool) -> Started:
        memory, memory_mask = self.model.encode(images.to(self.device), widths.to(self.device))
        started = Started(lengths=(~memory_mask).sum(dim=1).cpu())
        if decoder:
            started.state = self.model.decoder.init_state(memory, memory_mask)
        if ctc:
            started.ctc_log_probs = self.model.ctc_head(memory).float().log_softmax(dim=-1).cpu()
        return started

    def step(self, state: Any, prev_tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        log_probs, state = self.model.decoder.step(state, prev_tokens.to(self.device))
        return log_probs.cpu(), state

    def reorder(self, state: Any, index: torch.Tensor) -> Any:
        return self.model.decoder.reorder_state(state, index.to(self.device))


class LockStep:
    """Several started models as one decoder (`init_state` / `step` / `reorder_state`) for the searches.

    The searches call `init_state(memory, memory_mask)` for the batch size only: the models were started
    already, so `placeholder_memory` stands in for the memory.
    """

    def __init__(self, models: list[StepModel], states: list) -> None:
        self.models = models
        self.states = states

    @staticmethod
    def placeholder_memory(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.empty(batch, 0, 0), torch.empty(batch, 0, dtype=torch.bool)

    def init_state(self, memory: torch.Tensor, memory_mask: torch.Tensor) -> list:
        return self.states

    def step(self, states: list, prev_tokens: torch.Tensor) -> tuple[torch.Tensor, list]:
        outputs = [m.step(s, prev_tokens) for m, s in zip(self.models, states)]
        if len(outputs) == 1:
            return outputs[0][0], [outputs[0][1]]
        probs = torch.stack([log_probs.float().exp() for log_probs, _ in outputs]).mean(dim=0)
        return probs.log(), [s for _, s in outputs]

    def reorder_state(self, states: list, index: torch.Tensor) -> list:
        return [m.reorder(s, index) for m, s in zip(self.models, states)]


def ctc_log_likelihood(log_probs: torch.Tensor, length: int, ids: list[int]) -> float:
    """log P(ids | one line's T x V CTC log-probs, its first `length` columns), by the forward algorithm;
    -inf when the text needs more columns than there are."""
    log_probs = log_probs[:length].float()
    if not ids:
        return float(log_probs[:, BLANK].sum())
    loss = F.ctc_loss(
        log_probs[:, None], torch.tensor([ids], dtype=torch.long), torch.tensor([length]),
        torch.tensor([len(ids)]), blank=BLANK, reduction="sum",
    )  # fmt: skip
    return -float(loss)


def rescore_ctc(started: list[Started], ctc_decoder=None) -> DecodeResult:
    """Each model reads each line (CTC best path, or `ctc_decoder`); a line's reading is the candidate with
    the highest sum over models of its CTC log-likelihood. Its character probabilities are those of the
    model that proposed it; its score is that sum divided by the models and the line's columns."""
    readings = [(ctc_decoder or ctc_best_path)(*ctc_inputs(s)) for s in started]
    result = DecodeResult([], [], [])
    for line in range(len(started[0].lengths)):
        best, best_score = 0, -math.inf  # every reading impossible for some model: the first model's
        for proposer, reading in enumerate(readings):
            ids = reading.token_ids[line]
            if any(ids == readings[k].token_ids[line] for k in range(proposer)):
                continue  # proposed already: same score
            score = 0.0
            for s in started:
                n = int(s.lengths[line])
                score += ctc_log_likelihood(s.ctc_log_probs[line], n, ids) / max(1, n)
            if score > best_score:
                best, best_score = proposer, score
        result.token_ids.append(readings[best].token_ids[line])
        result.token_probs.append(readings[best].token_probs[line])
        result.scores.append(best_score / len(started))
    return result


def ctc_inputs(started: Started) -> tuple[torch.Tensor, torch.Tensor]:
    """One model's CTC log-probs as float (B x T x V) and its padding mask (B x T): what a CTC search takes."""
    log_probs = started.ctc_log_probs.float()
    mask = torch.arange(log_probs.shape[1])[None, :] >= started.lengths[:, None]
    return log_probs, mask


class EnsembleDecoder:
    """`decoder(batches, method, beam_size) -> DecodeResult` over one or more models (one input batch each)."""

    def __init__(self, models: list, device: str = "cpu") -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models: list[StepModel] = [
            m if hasattr(m, "start") else TorchStepModel(m, device) for m in models
        ]
        self.charset = self.models[0].charset
        for i, m in enumerate(self.models[1:], start=1):
            if m.charset.chars != self.charset.chars:
                raise ValueError(f"model {i} has another charset than model 0: an ensemble must share one")
        self.max_len = min(m.max_len for m in self.models)

    def resolve_method(self, method: str | None) -> str:
        """The method these models decode with: None is the models' own (CTC for CTC-only models, else
        greedy). A method the models cannot decode with is refused, never silently replaced."""
        with_decoder = [m.has_decoder for m in self.models]
        method = check_method(method or default_method(any(with_decoder)))
        if method == "ctc":
            if not all(m.has_ctc for m in self.models):
                raise ValueError("method 'ctc' needs every model to have a CTC head")
            return method
        if not any(with_decoder):
            raise ValueError(
                f"method {method!r} needs an attention decoder, and this model reads with CTC only: "
                "use method 'ctc' (or leave the method out)"
            )
        if not all(with_decoder):
            raise ValueError("some models are CTC-only: decode this ensemble with method='ctc'")
        return method

    @torch.inference_mode()
    def __call__(
        self,
        batches: list[tuple[torch.Tensor, torch.Tensor]],
        method: str | None = None,
        beam_size: int = 4,
        ctc_decoder=None,
    ) -> DecodeResult:
        """`ctc_decoder(log_probs, padding_mask) -> DecodeResult` replaces CTC best path when given (the
        address domain's beam search with an LM)."""
        method = self.resolve_method(method)
        first = self.models[0]
        ctc_search = method == "ctc" and ctc_decoder is not None
        if len(self.models) == 1 and isinstance(first, TorchStepModel) and not ctc_search:
            images, widths = batches[0]
            return first.model.decode(images.to(first.device), widths.to(first.device), method, beam_size)
        use_ctc = method == "ctc"
        started = [
            m.start(images, widths, decoder=not use_ctc, ctc=use_ctc)
            for m, (images, widths) in zip(self.models, batches)
        ]
        if use_ctc:
            if len(started) > 1:
                return rescore_ctc(started, ctc_decoder)
            return (ctc_decoder or ctc_best_path)(*ctc_inputs(started[0]))
        lock_step = LockStep(self.models, [s.state for s in started])
        memory, memory_mask = LockStep.placeholder_memory(len(started[0].lengths))
        return run_decoder(method, lock_step, memory, memory_mask, self.max_len, beam_size)
