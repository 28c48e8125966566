"""Text: the charset, normalisation (NFC, whitespace, tone-mark style) and recognition metrics."""

from vihtr.text.charset import VIETNAMESE_CHARSET, Charset, UnknownCharReport
from vihtr.text.normalize import normalize_text, to_new_tone_style, to_old_tone_style

__all__ = [
    "Charset",
    "UnknownCharReport",
    "VIETNAMESE_CHARSET",
    "normalize_text",
    "to_new_tone_style",
    "to_old_tone_style",
]
