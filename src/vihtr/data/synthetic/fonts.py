"""The vendored handwriting fonts (OFL-1.1, `vihtr/assets/fonts/<name>/<File>.ttf`), found by folder.

Every font here covers every Vietnamese letter of the charset and draws each tone distinctly
(tests/test_fonts.py proves it); a font that failed was deleted from the assets, not skipped here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from vihtr.paths import ASSETS_DIR

FONT_DIR = ASSETS_DIR / "fonts"
# The `form` style's fonts: the half of the vendored fonts that vihtr-lite1 (trained on 80 % real lines)
# reads best when they are rendered as form lines, 7.4-12.9 % CER against 13.1-26.3 % for the other half,
# ornate scripts (`python scripts/realism.py --styles form --reader-cer models/vihtr-lite1 --font-lines 32`).
# Of the fonts added later, oooh-baby reads as well (11.9 %); playwrite-vn (the Vietnamese school cursive,
# 20.7 %) and square-peg (21.7 %) read like the ornate scripts, so they are vendored but not drawn here.
FORM_FONTS = (
    "borel",
    "charm",
    "dancing-script",
    "grape-nuts",
    "itim",
    "mali",
    "moon-dance",
    "mynerve",
    "oooh-baby",
    "pacifico",
    "pangolin",
    "patrick-hand",
    "playpen-sans",
    "sedgwick-ave",
    "send-flowers",
    "shantell-sans",
    "sriracha",
)

# The `v1` style's fonts: every font vendored when it was the renderer, so its comparison can be re-run.
V1_FONTS = (
    "alex-brush", "allura", "birthstone", "borel", "charm", "charmonman", "comforter", "corinthia",
    "dancing-script", "ephesis", "grape-nuts", "great-vibes", "hurricane", "inspiration", "itim",
    "kolker-brush", "love-light", "mali", "mea-culpa", "moon-dance", "my-soul", "mynerve", "pacifico",
    "pangolin", "patrick-hand", "playpen-sans", "puppies-play", "sedgwick-ave", "send-flowers",
    "shantell-sans", "sriracha", "whisper",
)  # fmt: skip


@lru_cache(maxsize=1)
def _all_fonts() -> dict[str, Path]:
    fonts = {}
    for folder in sorted(p for p in FONT_DIR.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.ttf")) + sorted(folder.glob("*.otf"))
        if files:
            fonts[folder.name] = files[0]
    return fonts


def font_names() -> list[str]:
    """Names of the vendored fonts (their folder names, e.g. `patrick-hand`), sorted."""
    return list(_all_fonts())


def font_path(name: str) -> Path:
    fonts = _all_fonts()
    if name not in fonts:
        raise KeyError(f"unknown font {name!r}; vendored fonts: {', '.join(fonts)}")
    return fonts[name]


@lru_cache(maxsize=512)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A font at a pixel size, cached: opening a TrueType file costs far more than drawing a glyph."""
    return ImageFont.truetype(str(font_path(name)), size)
