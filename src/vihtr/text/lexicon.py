"""The word keys a prose language model counts and scores: one home for how a written token becomes an LM word.

Vietnamese writes one syllable per space-separated token, so the prose LM is a syllable n-gram. A token
counts without its case and its surrounding punctuation ("Phải," and "phải" are the same syllable), and
every number is one word, `<num>`: the LM judges whether a syllable is Vietnamese and fits its
neighbours, never which digits or which punctuation a writer put down (the image decides those).
"""

from __future__ import annotations

import string

NUMBER = "<num>"
PUNCTUATION = string.punctuation + "“”‘’…–—«»"
_NUMBER_CHARS = frozenset("0123456789.,:/-")


def is_number(token: str) -> bool:
    """Digits with their separators only ("12", "452/8", "1.000", "10-12"): a number, whatever its digits."""
    return any(c.isdigit() for c in token) and all(c in _NUMBER_CHARS for c in token)


def lm_key(token: str) -> str:
    """The LM word of one written token: lower case without surrounding punctuation, `<num>` for a
    number, "" for punctuation alone (which the LM does not score). Digits mixed with letters stay as they
    are, an unknown word."""
    key = token.lower().strip(PUNCTUATION)
    if key and is_number(key):
        return NUMBER
    return key


def lm_line(text: str) -> str:
    """A text line as the LM's training text: its tokens' keys, punctuation-only tokens dropped."""
    return " ".join(k for k in (lm_key(t) for t in text.split()) if k)
