"""Recognition metrics: CER, WER, line accuracy and the Kalapa 2023 score, plus an error breakdown.

Rates are corpus-level (total edits / total reference length), as torchmetrics' CharErrorRate computes
them. The Kalapa score is per line: 1 if exact, else max(0, 1 - 1.5**d / n), averaged over lines.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import editdistance


def kalapa_score(pred: str, target: str) -> float:
    if pred == target:
        return 1.0
    d = editdistance.eval(pred, target)
    n = max(len(target), 1)
    return max(0.0, 1.0 - 1.5**d / n)


def strip_diacritics(text: str) -> str:
    """Base letters only: tone marks and vowel hats removed, đ -> d."""
    decomposed = unicodedata.normalize("NFD", text)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    return base.replace("đ", "d").replace("Đ", "D")


@dataclass
class LineMetrics:
    """Accumulates metrics over lines; `compute()` returns a dict of floats."""

    char_edits: int = 0
    chars: int = 0
    word_edits: int = 0
    words: int = 0
    exact: int = 0
    lines: int = 0
    kalapa: float = 0.0
    base_edits: int = 0  # edits left after removing all diacritics: base-letter errors
    extra: dict = field(default_factory=dict)

    def update(self, preds: list[str], targets: list[str]) -> None:
        for p, t in zip(preds, targets, strict=True):
            self.char_edits += editdistance.eval(p, t)
            self.chars += len(t)
            tw = t.split()
            self.word_edits += editdistance.eval(p.split(), tw)
            self.words += len(tw)
            self.exact += int(p == t)
            self.lines += 1
            self.kalapa += kalapa_score(p, t)
            self.base_edits += editdistance.eval(strip_diacritics(p), strip_diacritics(t))

    def compute(self) -> dict[str, float]:
        if self.lines == 0:
            return {}
        cer = self.char_edits / max(self.chars, 1)
        base_cer = self.base_edits / max(self.chars, 1)
        return {
            "cer": cer,
            "wer": self.word_edits / max(self.words, 1),
            "line_acc": self.exact / self.lines,
            "kalapa_score": self.kalapa / self.lines,
            # CER that diacritics alone explain: what the error rate drops by when marks are ignored
            "diacritic_cer": max(cer - base_cer, 0.0),
            "base_cer": base_cer,
            "lines": float(self.lines),
        }
