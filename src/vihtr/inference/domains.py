"""Decoding domains: what a line is expected to say, and how that shapes its decoding.

- `general`: the model's own reading (its release's decoding: CTC best path for the shipped default).
- `address`: a Vietnamese address as forms write it. CTC prefix beam search with the address word
  n-gram (`vihtr.inference.ctc_lm`, built by `make lm` from public data only), then the address tail's
  unit names checked against the administrative-unit tree (`vihtr.text.address`). Every line is read
  as an address: prose read this way drifts towards address words, so prose belongs in `general`.
- `auto`: `address` for the lines whose plain reading already ends in two or more units that belong
  together (ward + district, district + province, ...), `general` for the others. A little less
  accurate on addresses than `address` (a badly read tail is not recognised), as good as `general`
  on prose; the safe default for mixed forms.

A release states its default domain (`metadata.domain`); every call can choose another.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from vihtr.inference.types import Prediction
from vihtr.paths import ASSETS_DIR

DOMAINS = ("general", "address", "auto")
AUTO_MIN_UNITS = 2  # units a plain reading must end in for `auto` to read it as an address
DEFAULT_DOMAIN = "general"
ADDRESS_LM = ASSETS_DIR / "lm" / "address.arpa.gz"


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        # the value may come from a request: echo only its start
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {str(domain)[:40]!r}")
    return domain


def realign_confidences(old: str, new: str, confidences: list[float]) -> list[float]:
    """Per-character confidences for `new`, a corrected `old`: kept where characters are kept, and a
    replaced span's characters get the mean confidence of what they replace (or of its neighbours)."""
    out: list[float] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            out.extend(confidences[i1:i2])
            continue
        if op == "delete":
            continue
        source = confidences[i1:i2] or confidences[max(0, i1 - 1) : i1 + 1] or [0.0]
        out.extend([sum(source) / len(source)] * (j2 - j1))
    return out


class AddressDomain:
    """What the address domains add: CTC beam search with the LM (`ctc_decoder(gated)`), and the tail
    check (`postprocess`)."""

    def __init__(self, charset, lm_path: str | os.PathLike | None = ADDRESS_LM) -> None:
        """`lm_path=None` skips the beam search (best path, then the tail check)."""
        from vihtr.text.address import AddressCorrector

        self.charset = charset
        self.beam = None
        if lm_path is not None:
            from vihtr.inference.ctc_lm import KenLMCTCDecoder

            self.beam = KenLMCTCDecoder(charset, Path(lm_path))
        self.corrector = AddressCorrector()

    def looks_like_address(self, text: str) -> bool:
        return len(self.corrector.best_chain(text)) >= AUTO_MIN_UNITS

    def ctc_decoder(self, gated: bool):
        """A `ctc_decoder(log_probs, padding_mask) -> DecodeResult` for `EnsembleDecoder`: beam search with
        the LM for every line, or (`gated`, the `auto` domain) only for lines whose best path looks like
        an address. None without an LM."""
        if self.beam is None:
            return None
        if not gated:
            return self.beam

        def decode(log_probs, padding_mask):
            from vihtr.models.decoding import ctc_best_path

            result = ctc_best_path(log_probs, padding_mask)
            for row, ids in enumerate(result.token_ids):
                if self.looks_like_address(self.charset.decode(ids)):
                    line = self.beam(log_probs[row : row + 1], padding_mask[row : row + 1])
                    result.token_ids[row], result.token_probs[row] = line.token_ids[0], line.token_probs[0]
            return result

        return decode

    def postprocess(self, prediction: Prediction) -> Prediction:
        corrected = self.corrector.correct(prediction.text)
        if corrected != prediction.text:
            prediction.char_confidences = realign_confidences(
                prediction.text, corrected, prediction.char_confidences
            )
            prediction.text = corrected
        return prediction
