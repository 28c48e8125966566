"""Every vendored font covers the whole charset and draws every Vietnamese letter distinctly."""

import unicodedata

import numpy as np
import pytest
from fontTools.ttLib import TTFont

from vihtr.data.synthetic.fonts import font_names, font_path
from vihtr.data.synthetic.render import glyph
from vihtr.text.charset import BASE_VOWELS, DIGITS, SYMBOLS, TONE_MARKS, VIETNAMESE_LETTERS

SIZE = 36


def test_at_least_30_fonts():
    assert len(font_names()) >= 30


def _bitmap(font: str, char: str) -> tuple:
    g = glyph(font, SIZE, char)
    return g.mask.shape, g.top, g.left, (g.mask > 96).tobytes()


@pytest.mark.parametrize("font", font_names())
def test_font_covers_and_distinguishes_every_letter(font):
    cmap = TTFont(font_path(font), lazy=True).getBestCmap()
    missing = [c for c in VIETNAMESE_LETTERS + DIGITS + SYMBOLS if c != " " and ord(c) not in cmap]
    assert not missing, f"{font} lacks {''.join(missing)}"
    for char in VIETNAMESE_LETTERS + DIGITS + SYMBOLS.strip():
        assert glyph(font, SIZE, char).mask.any(), f"{font} draws {char!r} blank"
    # each vowel's six tones (and đ/d) must all be told apart, in both cases
    for vowel in BASE_VOWELS + BASE_VOWELS.upper():
        family = [vowel] + [unicodedata.normalize("NFC", vowel + mark) for mark in TONE_MARKS]
        bitmaps = {_bitmap(font, c) for c in family}
        assert len(bitmaps) == len(family), f"{font}: tones of {vowel!r} look alike"
    for pair in ("dđ", "DĐ"):
        assert _bitmap(font, pair[0]) != _bitmap(font, pair[1]), f"{font}: {pair} look alike"


@pytest.mark.parametrize("font", font_names())
def test_tone_marks_are_drawn_above_or_below_the_letter(font):
    """A tone mark adds ink outside the base letter's box: above for grave/acute/hook/tilde, below for dot."""
    base = glyph(font, SIZE, "a")
    for mark, below in zip(TONE_MARKS, (False, False, False, False, True)):
        toned = glyph(font, SIZE, unicodedata.normalize("NFC", "a" + mark))
        if below:
            assert toned.top + toned.mask.shape[0] > base.top + base.mask.shape[0], f"{font}: no dot below"
        else:
            assert toned.top < base.top, f"{font}: no mark above 'a' + {mark!r}"
    assert np.count_nonzero(glyph(font, SIZE, "ấ").mask) > np.count_nonzero(base.mask)


def test_vendor_font_merges_web_font_subsets(tmp_path):
    """scripts/vendor_font.py: a @fontsource font comes as per-subset woff files; merged, a Vietnamese line
    draws from all of them."""
    import importlib.util
    from pathlib import Path

    from fontTools import subset

    path = Path(__file__).resolve().parents[1] / "scripts" / "vendor_font.py"
    spec = importlib.util.spec_from_file_location("vendor_font", path)
    vendor_font = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vendor_font)

    latin, vietnamese = "abcdefghijklmnopqrstuvwxyz ", "ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"
    parts = []
    for name, chars in (("latin", latin), ("vietnamese", vietnamese)):
        options = subset.Options()
        options.flavor = "woff"
        font = TTFont(font_path("patrick-hand"))
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=chars)
        subsetter.subset(font)
        parts.append(tmp_path / f"{name}.woff")
        subset.save_font(font, str(parts[-1]), options)
        assert not set(map(ord, vietnamese if name == "latin" else "bcfjkqz")) & set(font.getBestCmap())
    merged = vendor_font.merge_subsets(parts, tmp_path / "merged" / "merged.ttf")
    cmap = TTFont(merged).getBestCmap()
    assert set(map(ord, latin + vietnamese)) <= set(cmap)
    from PIL import ImageFont

    face = ImageFont.truetype(str(merged), SIZE)
    assert all(
        face.getmask(c).getbbox() for c in (latin + vietnamese).replace(" ", "")
    )  # every letter draws ink
