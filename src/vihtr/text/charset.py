"""The one charset of vihtr: every Vietnamese letter (NFC), digits, space and the symbols real labels use.

A `Charset` maps text to token ids and back. Ids 0..3 are reserved (pad, start, end, mask); the CTC
blank shares id 0 with pad, which never appears inside a target. A character outside the charset is
never dropped silently: `encode` raises, and `UnknownCharReport` counts such labels per dataset.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field

BASE_VOWELS = "aăâeêioôơuưy"
# combining marks for the five tones: grave, acute, hook above, tilde, dot below
TONE_MARKS = ("\u0300", "\u0301", "\u0309", "\u0303", "\u0323")


def _vietnamese_letters() -> str:
    lower = []
    for vowel in BASE_VOWELS:
        lower.append(vowel)
        lower.extend(unicodedata.normalize("NFC", vowel + mark) for mark in TONE_MARKS)
    latin = "abcdefghijklmnopqrstuvwxyz"
    letters = list(latin) + [c for c in lower if c not in latin] + ["đ"]
    return "".join(letters) + "".join(c.upper() for c in letters)


VIETNAMESE_LETTERS = _vietnamese_letters()
DIGITS = "0123456789"
# punctuation and symbols seen in the Kalapa labels and the VNOnDB transcriptions, plus common form symbols
SYMBOLS = " /-,.():;\"'?!&%*+#@_=<>[]…–"
VIETNAMESE_CHARSET = VIETNAMESE_LETTERS + DIGITS + SYMBOLS

PAD, SOS, EOS, MASK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<mask>")


def longest_label(max_len: int | None) -> int | None:
    """The longest label a decoder of `max_len` tokens reads: its sequence also holds SOS and EOS. The one
    label-length limit: training skips longer labels (`data.max_label_length`), and so does evaluation."""
    return None if max_len is None else int(max_len) - 2


class UnknownCharacterError(ValueError):
    """A label holds a character the charset cannot represent."""


@dataclass
class Charset:
    """Text <-> token ids. `chars` is the ordered alphabet; ids start after the special tokens."""

    chars: str = VIETNAMESE_CHARSET

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("charset has repeated characters")
        self._index = {c: i + len(SPECIAL_TOKENS) for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars) + len(SPECIAL_TOKENS)

    def __contains__(self, text: str) -> bool:
        return all(c in self._index for c in text)

    def unknown(self, text: str) -> list[str]:
        return [c for c in text if c not in self._index]

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        bad = self.unknown(text)
        if bad:
            raise UnknownCharacterError(f"characters not in the charset: {sorted(set(bad))!r} in {text!r}")
        ids = [self._index[c] for c in text]
        return [SOS, *ids, EOS] if add_special else ids

    def decode(self, ids) -> str:
        """Ids to text, stopping at the first end token; special tokens are skipped."""
        out = []
        offset = len(SPECIAL_TOKENS)
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= offset:
                out.append(self.chars[i - offset])
        return "".join(out)

    def to_dict(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def from_dict(cls, d: dict) -> Charset:
        return cls(chars=d["chars"])


@dataclass
class UnknownCharReport:
    """Counts labels with characters outside the charset, per dataset, with a few examples."""

    max_examples: int = 5
    counts: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add(self, dataset: str, text: str, unknown: list[str]) -> None:
        self.labels[dataset] += 1
        self.counts.update(unknown)
        ex = self.examples.setdefault(dataset, [])
        if len(ex) < self.max_examples:
            ex.append(text)

    def __bool__(self) -> bool:
        return bool(self.labels)

    def summary(self) -> str:
        if not self:
            return "all labels are inside the charset"
        lines = []
        for dataset, n in self.labels.items():
            lines.append(f"{dataset}: {n} label(s) with unknown characters, e.g. {self.examples[dataset]!r}")
        lines.append(f"unknown characters: {dict(self.counts.most_common(20))!r}")
        return "\n".join(lines)
