"""Label and output normalisation: NFC, collapsed whitespace, and the tone-mark placement style.

Vietnamese has two conventions for where the tone mark sits in the vowel clusters oa, oe, uy:
old style `Hoà`, `Thuỷ`, `khoẻ` and new style `Hòa`, `Thủy`, `khỏe`. Both occur in real forms;
Kalapa labels use the old style. Each dataset chooses its style by config (`old`, `new` or `keep`).
"""

from __future__ import annotations

import re
import unicodedata

_TONES = "\u0300\u0301\u0309\u0303\u0323"
_WS = re.compile(r"\s+")

# The clusters whose tone placement differs between the two styles, only when nothing follows them
# in the syllable (hoàng / thuyền / khoẻ-n are the same in both styles).
_CLUSTERS = ("oa", "oe", "uy")


def normalize_text(text: str, tone_style: str = "keep") -> str:
    """NFC, whitespace collapsed and stripped, tone marks placed in `tone_style` (old | new | keep)."""
    text = _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if tone_style == "old":
        return to_old_tone_style(text)
    if tone_style == "new":
        return to_new_tone_style(text)
    if tone_style != "keep":
        raise ValueError(f"tone_style must be old, new or keep, not {tone_style!r}")
    return text


def _split_tone(syllable: str) -> tuple[str, str | None]:
    """Remove the tone mark from a syllable (NFD level); returns (toneless NFC syllable, mark)."""
    decomposed = unicodedata.normalize("NFD", syllable)
    marks = [c for c in decomposed if c in _TONES]
    if len(marks) != 1:
        return syllable, None
    bare = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONES))
    return bare, marks[0]


def _place(bare: str, index: int, mark: str) -> str:
    return unicodedata.normalize("NFC", bare[: index + 1] + mark + bare[index + 1 :])


_WORD = re.compile(r"^(\W*)(.*?)(\W*)$")


def _move_tone(token: str, to_old: bool) -> str:
    head, word, tail = _WORD.match(token).groups()
    return head + _move_tone_in_word(word, to_old) + tail


def _move_tone_in_word(word: str, to_old: bool) -> str:
    bare, mark = _split_tone(word)
    if mark is None:
        return word
    low = bare.lower()
    for cluster in _CLUSTERS:
        pos = low.find(cluster)
        # the cluster must end the syllable; "qu" + "y" (quý) is not a uy diphthong
        if pos < 0 or pos + 2 != len(low) or (cluster == "uy" and pos > 0 and low[pos - 1] == "q"):
            continue
        target = pos + 1 if to_old else pos
        return _place(bare, target, mark)
    return word


def to_old_tone_style(text: str) -> str:
    """`Hòa Thủy khỏe` -> `Hoà Thuỷ khoẻ`."""
    return " ".join(_move_tone(w, to_old=True) for w in text.split(" "))


def to_new_tone_style(text: str) -> str:
    """`Hoà Thuỷ khoẻ` -> `Hòa Thủy khỏe`."""
    return " ".join(_move_tone(w, to_old=False) for w in text.split(" "))
