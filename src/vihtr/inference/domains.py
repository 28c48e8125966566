"""Decoding domains: what a line is expected to say, and how that shapes its decoding.

- `general`: the model's own reading (its release's decoding: CTC best path for the shipped default),
  with no language model: every character as the image shows it.
- `prose`: Vietnamese sentences (notes, letters, free-text fields). CTC prefix beam search with the prose
  syllable n-gram (`vihtr.inference.ctc_lm`, built by `make lm` from public text): a reading that is
  not Vietnamese ("tếng", "ngưới") gives way to one that is, where the image leaves room for it. Names
  and foreign words outside the lexicon pay a penalty but pass when the image is clear; numbers are
  never changed into other numbers by the LM.
- `address`: a Vietnamese address as forms write it. CTC prefix beam search with the address word
  n-gram (built by `make lm` from public data only), then the address tail's unit names checked against
  the administrative-unit tree (`vihtr.text.address`). Every line is read as an address: prose read
  this way drifts towards address words.
- `auto`: `address` for the lines whose plain reading already ends in two or more units that belong
  together (ward + district, district + province, ...), `prose` for the others; each prediction says
  which (`Prediction.domain`). The safe default for mixed forms.

A release states its default domain (`metadata.domain`); every call can choose another.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from vihtr.inference.types import Prediction
from vihtr.paths import ASSETS_DIR

DOMAINS = ("general", "prose", "address", "auto")
AUTO_MIN_UNITS = 2  # units a plain reading must end in for `auto` to read it as an address
DEFAULT_DOMAIN = "general"
ADDRESS_LM = ASSETS_DIR / "lm" / "address.arpa.gz"
PROSE_LM = ASSETS_DIR / "lm" / "prose.arpa.gz"


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


@dataclass
class Route:
    """How `auto` read a line: the domain chosen, on which text (the line's best path), and that text's
    address tail (`vihtr.text.address.Match`es; [] when none)."""

    domain: str
    text: str
    chain: list


class AddressDomain:
    """What the address domain adds: CTC beam search with the LM (`ctc_decoder`), and the tail check
    (`postprocess`)."""

    def __init__(self, charset, lm_path: str | os.PathLike | None = ADDRESS_LM) -> None:
        """`lm_path=None` skips the beam search (best path, then the tail check)."""
        from vihtr.text.address import AddressCorrector

        self.charset = charset
        self.beam = None
        if lm_path is not None:
            from vihtr.inference.ctc_lm import KenLMCTCDecoder

            self.beam = KenLMCTCDecoder(charset, Path(lm_path))
        self.corrector = AddressCorrector()

    def route(self, text: str, fallback: str) -> Route:
        """`address` for a reading that ends like an address, else `fallback`; the tail found is kept, so
        the tail check need not look for it again."""
        chain = self.corrector.best_chain(text)
        return Route("address" if len(chain) >= AUTO_MIN_UNITS else fallback, text, chain)

    def ctc_decoder(self):
        """A `ctc_decoder(log_probs, padding_mask) -> DecodeResult` for `EnsembleDecoder`: beam search with
        the address LM, or None without an LM."""
        return self.beam

    def postprocess(self, prediction: Prediction, route: Route | None = None) -> Prediction:
        """The tail check. `route`: the line's routing, whose tail is reused when the search kept its text."""
        chain = route.chain if route is not None and route.text == prediction.text else None
        corrected = self.corrector.correct(prediction.text, chain)
        if corrected != prediction.text:
            prediction.char_confidences = realign_confidences(
                prediction.text, corrected, prediction.char_confidences
            )
            prediction.text = corrected
        return prediction


class ProseDomain:
    """What the prose domain adds: CTC beam search with the prose syllable LM."""

    def __init__(self, charset, lm_path: str | os.PathLike = PROSE_LM) -> None:
        from vihtr.inference.ctc_lm import (
            PROSE_ALPHA,
            PROSE_BEAM_WIDTH,
            PROSE_BETA,
            PROSE_UNK_OFFSET,
            KenLMCTCDecoder,
        )

        self.beam = KenLMCTCDecoder(
            charset,
            Path(lm_path),
            alpha=PROSE_ALPHA,
            beta=PROSE_BETA,
            unk_offset=PROSE_UNK_OFFSET,
            beam_width=PROSE_BEAM_WIDTH,
            keyed=True,
        )

    def ctc_decoder(self):
        return self.beam


def routed_decoder(charset, address: AddressDomain, prose: ProseDomain | None, chosen: list[list[Route]]):
    """The `auto` domain's `ctc_decoder`: each line's best path picks its domain (`address` when it ends
    like an address, else `prose`; `general` when there is no prose LM), which then searches that line.
    Each call appends its lines' `Route`s to `chosen` (an ensemble calls it once per model)."""
    from vihtr.models.decoding import ctc_best_path

    searches = {
        "address": address.ctc_decoder(),
        "prose": prose.ctc_decoder() if prose else None,
        "general": None,
    }

    def decode(log_probs, padding_mask):
        result = ctc_best_path(log_probs, padding_mask)
        chosen.append([])
        for row, ids in enumerate(result.token_ids):
            route = address.route(charset.decode(ids), "prose" if prose is not None else "general")
            chosen[-1].append(route)
            search = searches[route.domain]
            if search is not None:
                line = search(log_probs[row : row + 1], padding_mask[row : row + 1])
                result.token_ids[row], result.token_probs[row] = line.token_ids[0], line.token_probs[0]
        return result

    return decode
