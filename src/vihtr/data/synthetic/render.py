"""Text -> an RGB line image that looks handwritten: ink glyphs with per-glyph jitter on a form's paper.

Glyph bitmaps are drawn once per (font, size, character) and cached; a line is composed from them with
a random baseline offset, rotation, scale and spacing per glyph, a baseline that wanders, a slant and a
pen-width change for the whole line, then cropped to its ink and laid on paper in a ballpoint colour.
Every random choice comes from the `random.Random` passed in, so a fixed rng gives the same image.

Two styles (issue 9 measured both: `scripts/realism.py`, `conf/experiment/synth_probe.yaml`):
- `form` (default): fonts that resemble the real forms (`FORM_FONTS`), the real lines' loose spacing, a
  word now and then struck out and rewritten, and, where the real data is there (`paper.PaperBank`), a
  Kalapa training crop with its handwriting removed as the paper: its tint, light, ruled box borders and
  pen colour, the ink at the height and margins the real lines have;
- `v1`: the first renderer (every font, tight spacing, procedural paper filled by the ink), kept so its
  comparison can be re-run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw

from vihtr.data.synthetic.fonts import FORM_FONTS, V1_FONTS, font_names, load_font
from vihtr.data.synthetic.paper import Paper, PaperBank

# Glyphs are drawn at one of these sizes (pixels), then the composed line is scaled to the output height:
# a few fixed sizes keep the glyph cache small; the middle one is the common case.
GLYPH_SIZES = (34, 36, 39)
# ballpoint and gel-pen inks (RGB): black, blue-black, blues, purples
INKS = (
    (20, 20, 25),
    (35, 35, 45),
    (25, 35, 80),
    (20, 45, 140),
    (30, 60, 170),
    (15, 30, 110),
    (60, 40, 130),
    (80, 45, 140),
)
# printed form colours: grey, black, light blue, pale red
FORM_INKS = ((150, 150, 150), (90, 90, 90), (120, 150, 200), (200, 140, 140))
STYLES = ("form", "v1")
# gaps between words (x the space's advance) and letters (x the glyph size) per style: the real Kalapa lines
# are written loosely (scripts/realism.py prints pixels per character of real and synthetic lines)
WORD_GAP = {"v1": (0.8, 1.6), "form": (1.0, 2.2)}
LETTER_GAP = {"v1": (-0.04, 0.08), "form": (-0.02, 0.08)}
# pen widths at glyph scale: the real forms are filled with fine ballpoints
# (pen width range, most one-pixel erosions of a heavy font)
PEN_WIDTH = {"v1": ((1.5, 4.0), 1), "form": ((0.5, 1.8), 3)}
ELASTIC_PROB = 0.5  # form style: the line's strokes bent by a smooth random field (a hand, not a font)
SOLID_INK = np.array([round(255 * (i / 255) ** 0.35) for i in range(256)], np.uint8)  # coverage curve
STRIKE_PROB = 0.05  # form style: a word written, struck out and written again (not in the label)


@dataclass(frozen=True)
class Glyph:
    mask: np.ndarray  # uint8 coverage, 0..255
    left: int  # offset of the mask's left edge from the pen position
    top: int  # offset of the mask's top edge from the baseline (negative: above it)
    advance: float


@lru_cache(maxsize=40_000)
def glyph(font: str, size: int, char: str) -> Glyph:
    face = load_font(font, size)
    advance = face.getlength(char)
    left, top, right, bottom = face.getbbox(char, anchor="ls")
    if right <= left or bottom <= top:  # space and other blank glyphs
        return Glyph(np.zeros((0, 0), np.uint8), 0, 0, advance)
    image = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(image).text((-left, -top), char, font=face, fill=255, anchor="ls")
    return Glyph(np.asarray(image), left, top, advance)


@dataclass
class LineRenderer:
    """Renders text lines; the constructor's ranges are what each line draws from.

    height: output image height range (pixels, padding included).
    fonts: font names (see `font_names()`); None: the style's fonts (`FORM_FONTS` or `V1_FONTS`).
    jitter: scales every per-glyph perturbation (0 = a clean typeset line).
    form_line_prob: chance of printed form lines (underline, dotted line, boxes) behind the text.
    """

    height: tuple[int, int] = (40, 80)
    fonts: Sequence[str] | None = None
    jitter: float = 1.0
    form_line_prob: float = 0.4
    slant: float = 0.15  # shear dx/dy, drawn in [-slant, slant]
    padding: tuple[float, float] = (0.02, 0.25)  # paper around the ink, as a fraction of the ink height
    style: str = "form"
    paper: PaperBank | None = None  # form style: real paper; None: procedural paper
    _fonts: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        default = FORM_FONTS if self.style == "form" else V1_FONTS
        self._fonts = list(self.fonts) if self.fonts else list(default)
        unknown = set(self._fonts) - set(font_names())
        if unknown:
            raise ValueError(f"unknown fonts {sorted(unknown)}; vendored fonts: {font_names()}")
        self.height = (int(self.height[0]), int(self.height[1]))

    def render(self, text: str, rng: random.Random) -> Image.Image:
        return self.render_ink(*self._ink_mask(text, rng), rng)

    def render_ink(self, mask: np.ndarray, baseline: float, rng: random.Random) -> Image.Image:
        """An ink mask (uint8 coverage, cropped to the ink; `baseline` its row) on paper, as `render` lays a
        font's: other line sources (real pen strokes) share the paper, pen and scan."""
        if self.style == "form" and self.paper is not None:
            return Image.fromarray(self._on_form(mask, self.paper.sample(rng), rng))
        mask, baseline = self._fit_height(mask, baseline, rng)
        paper = self._paper(mask.shape, rng)
        if rng.random() < self.form_line_prob:
            self._draw_form_lines(paper, mask, baseline, rng)
        return Image.fromarray(self._ink(paper, mask, rng))

    # --- ink -------------------------------------------------------------------------------------

    def _ink_mask(self, text: str, rng: random.Random) -> tuple[np.ndarray, float]:
        """The line's ink coverage (uint8) and the baseline's row, at glyph scale, cropped to the ink."""
        font = rng.choice(self._fonts)
        size = GLYPH_SIZES[1]
        j = self.jitter
        face = load_font(font, size)
        ascent, descent = face.getmetrics()
        margin = size // 2  # room for tall marks, rotations and the wandering baseline
        height = ascent + descent + 2 * margin
        word_gap = rng.uniform(*WORD_GAP[self.style])
        letter_gap = rng.uniform(*LETTER_GAP[self.style]) * size
        struck = self.style == "form" and " " in text.strip() and rng.random() < STRIKE_PROB
        if struck:  # written twice: the first copy is struck out below
            words = text.split(" ")
            k = rng.randrange(len(words))
            strike_word = words[k]
            text = " ".join(words[:k] + [strike_word] + words[k:])
            strike_from = sum(len(w) + 1 for w in words[:k])
            strike_chars = range(strike_from, strike_from + len(strike_word))
        letter_room = 1 + max(0.0, letter_gap) / size if self.style == "form" else 1.0
        width = int(sum(glyph(font, size, c).advance for c in text) * max(1.0, word_gap) * 1.3 * letter_room)
        width += 3 * margin
        canvas = np.zeros((height, width), np.uint8)
        baseline = margin + ascent
        # the baseline wanders as a slow sine plus per-glyph noise, like a line written without a ruler
        wave_amp = rng.uniform(0.0, 0.04) * size * j
        wave_len = rng.uniform(8, 25) * size
        wave_phase = rng.uniform(0, 2 * math.pi)
        x = float(margin)
        struck_span = [width, 0]
        for i, char in enumerate(text):
            if struck and i in strike_chars:
                struck_span = [min(struck_span[0], x), x + glyph(font, size, char).advance]
            g = glyph(font, rng.choices(GLYPH_SIZES, (1, 4, 1))[0] if j else size, char)
            if char == " ":
                x += g.advance * word_gap + letter_gap
                continue
            dy = wave_amp * math.sin(wave_phase + 2 * math.pi * x / wave_len) + rng.gauss(0, 0.025 * size * j)
            mask, grew_x, grew_y = g.mask, 0, 0
            if mask.size and j and rng.random() < 0.5:
                mask, grew_x, grew_y = _rotate(mask, rng.gauss(0, 3.0 * j))
            if mask.size:
                top = int(round(baseline + g.top + dy)) - grew_y
                left = int(round(x + g.left)) - grew_x
                h, w = mask.shape
                if 0 <= top and top + h <= height and 0 <= left and left + w <= width:
                    region = canvas[top : top + h, left : left + w]
                    np.maximum(region, mask, out=region)
            x += g.advance * (1 + rng.gauss(0, 0.04 * j)) + letter_gap
        if struck:
            _strike(canvas, struck_span, baseline - 0.3 * size, size, rng)
        canvas, baseline = _crop_to_ink(canvas, baseline, pad=2)
        canvas = _shear(canvas, rng.uniform(-self.slant, self.slant), baseline)
        canvas = _pen_width(canvas, font_stroke_width(font), rng, *PEN_WIDTH[self.style])
        if self.style == "form" and j and rng.random() < ELASTIC_PROB:
            canvas = _elastic(canvas, size, rng)
        return _crop_to_ink(canvas, baseline, pad=0)

    def _fit_height(self, mask: np.ndarray, baseline: float, rng: random.Random) -> tuple[np.ndarray, float]:
        """Scale the ink to a random output height and pad it with paper (random margins each side)."""
        out_h = rng.randint(*self.height)
        top, bottom, left, right = (rng.uniform(*self.padding) for _ in range(4))
        ink_h = max(4, round(out_h / (1 + top + bottom)))
        scale = ink_h / mask.shape[0]
        ink_w = max(1, round(mask.shape[1] * scale * rng.uniform(0.9, 1.1)))  # slightly narrow or wide hand
        mask = cv2.resize(mask, (ink_w, ink_h), interpolation=cv2.INTER_AREA)
        pads = [round(p * ink_h) for p in (top, bottom, left, right)]
        pads[1] = max(pads[1], out_h - ink_h - pads[0])
        mask = cv2.copyMakeBorder(mask, *pads, cv2.BORDER_CONSTANT, value=0)
        return mask, pads[0] + baseline * scale

    def _on_form(self, mask: np.ndarray, paper: Paper, rng: random.Random) -> np.ndarray:
        """The ink on a real form's paper, placed as the real lines are: ink 42-68 % of the line's height,
        near the left border, a blank stretch after it up to the box's end, as wide as the real lines are
        per character."""
        out_h = rng.randint(*self.height)
        ink_h = max(4, round(out_h * rng.uniform(0.42, 0.68)))
        scale = ink_h / mask.shape[0]
        ink_w = max(1, round(mask.shape[1] * scale * rng.uniform(0.85, 1.2)))
        mask = cv2.resize(mask, (ink_w, ink_h), interpolation=cv2.INTER_AREA)
        left = round(rng.uniform(0.02, 0.4) * out_h)
        # the writing ends before the box does (its end border sits at 85-95 % of most crops' width)
        width = round((left + ink_w) / rng.uniform(0.5, 0.85))
        background = _fit_paper(paper.image, width, out_h)
        top = round((out_h - ink_h) / 2 + rng.gauss(0, 0.07 * out_h))
        top = min(max(0, top), out_h - ink_h)
        full = np.zeros((out_h, width), np.uint8)
        full[top : top + ink_h, left : left + ink_w] = mask
        pen = paper.ink if sum(paper.ink) < 3 * 110 else rng.choice(INKS)  # a faint crop's "ink" is paper
        # a photographed ballpoint stroke is solid at its core, down to a pixel wide: lift partial coverage
        # (thin strokes scaled down) towards full
        image = self._ink(background, cv2.LUT(full, SOLID_INK), rng, pen)
        # phone cameras sharpen (an unsharp mask): without it the lines are measurably softer than the real
        # ones (scripts/realism.py's statistics classifier: log Laplacian variance 7.5 against 8.4)
        blurred = cv2.GaussianBlur(image, (0, 0), 0.8 * out_h / 48)
        amount = rng.uniform(0.5, 1.5)
        # the overshoot stays within the line's own range: ink no darker than its pen, paper no brighter
        darkest, lightest = image.min(axis=(0, 1)), image.max(axis=(0, 1))
        image = np.clip(cv2.addWeighted(image, 1 + amount, blurred, -amount, 0), darkest, lightest)
        # the sensor's grain and the JPEG the photo was saved as, without chroma subsampling: a real crop was
        # taken at several times this size, so its thin strokes keep their pen's tint
        np_rng = np.random.default_rng(rng.getrandbits(64))
        grain = np_rng.normal(0.0, rng.uniform(1.0, 4.0), image.shape[:2]).astype(np.float32)
        image = np.clip(image + grain[..., None], 0, 255).astype(np.uint8)
        quality = [cv2.IMWRITE_JPEG_QUALITY, rng.randint(60, 95)]
        _, jpeg = cv2.imencode(
            ".jpg", image, [*quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        )
        return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)

    def _ink(
        self, paper: np.ndarray, mask: np.ndarray, rng: random.Random, pen: Sequence[int] | None = None
    ) -> np.ndarray:
        ink = [min(255, max(0, c + rng.randint(-12, 12))) for c in (pen or rng.choice(INKS))]
        alpha = mask.astype(np.float32) * (rng.uniform(0.8, 1.0) / 255.0)
        solid = np.empty_like(paper)
        solid[:] = ink
        # one vectorised pass (OpenCV) instead of several numpy float passes: this is the hot spot
        return cv2.blendLinear(paper, solid, 1.0 - alpha, alpha)

    # --- paper -----------------------------------------------------------------------------------

    def _paper(self, shape: tuple[int, int], rng: random.Random) -> np.ndarray:
        """Off-white paper (warm, cool or grey tint) with a faint low-frequency texture, uint8 HxWx3."""
        h, w = shape
        level = np.full((h, w), rng.uniform(215, 250), np.float32)
        if rng.random() < 0.7:
            np_rng = np.random.default_rng(rng.getrandbits(64))
            cell = rng.randint(4, 16)
            coarse = np_rng.normal(0, rng.uniform(1.5, 5), (h // cell + 2, w // cell + 2)).astype(np.float32)
            level += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.3:  # uneven light across the scan
            level += np.linspace(0, rng.uniform(-20, 20), w, dtype=np.float32)[None, :]
        tint = (rng.uniform(-4, 6), rng.uniform(-4, 4), rng.uniform(-12, 4))
        return cv2.merge([cv2.convertScaleAbs(level, alpha=1.0, beta=t) for t in tint])

    def _draw_form_lines(
        self, paper: np.ndarray, mask: np.ndarray, baseline: float, rng: random.Random
    ) -> None:
        """Printed form furniture behind the handwriting: a rule, a dotted line, a box or comb boxes."""
        h, w = mask.shape
        colour = tuple(min(255, max(0, c + rng.randint(-15, 15))) for c in rng.choice(FORM_INKS))
        thickness = 1 if h < 60 or rng.random() < 0.6 else 2
        y = int(min(h - 1, baseline + rng.uniform(0.0, 0.12) * h))
        kind = rng.choices(("rule", "dots", "box", "comb"), (4, 3, 2, 1))[0]
        if kind == "rule":
            cv2.line(paper, (0, y), (w - 1, y + rng.randint(-1, 1)), colour, thickness)
        elif kind == "dots":
            step = rng.randint(3, 7)
            dash = rng.randint(1, max(1, step - 2))
            for x in range(rng.randint(0, step), w, step):
                cv2.line(paper, (x, y), (x + dash - 1, y), colour, thickness)
        else:
            top = rng.randint(0, max(0, int(0.1 * h)))
            bottom = h - 1 - rng.randint(0, max(0, int(0.1 * h)))
            cv2.rectangle(
                paper, (rng.randint(0, 3), top), (w - 1 - rng.randint(0, 3), bottom), colour, thickness
            )
            if kind == "comb":  # one cell per letter, as on forms that ask for block capitals
                step = rng.randint(int(0.5 * h), int(0.9 * h) + 1)
                for x in range(step, w - 1, step):
                    cv2.line(
                        paper,
                        (x, bottom - int(rng.uniform(0.2, 1.0) * (bottom - top))),
                        (x, bottom),
                        colour,
                        1,
                    )


def _fit_paper(paper: np.ndarray, width: int, height: int) -> np.ndarray:
    """A form's paper at `height` x `width`: a wider crop is cut (its left part, then its right end with the
    box's end border), a narrower one stretched: squeezing a crop would squeeze its texture and borders."""
    natural = max(1, round(paper.shape[1] * height / paper.shape[0]))
    paper = cv2.resize(paper, (natural, height), interpolation=cv2.INTER_AREA)
    if natural <= width:
        return cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)
    end = min(width // 4, natural // 8)
    return np.concatenate([paper[:, : width - end], paper[:, natural - end :]], axis=1)


def _strike(canvas: np.ndarray, span: list[float], y: float, size: int, rng: random.Random) -> None:
    """Strike out the ink between x = span[0] and span[1]: one or two pen lines, or a scribble."""
    x0, x1 = int(span[0]), int(span[1])
    if x1 <= x0:
        return
    pen = rng.randint(2, 4)
    if rng.random() < 0.7:
        for _ in range(rng.choice((1, 1, 2))):
            y0, y1 = (int(y + rng.gauss(0, 0.12 * size)) for _ in range(2))
            cv2.line(canvas, (x0 - 2, y0), (x1 + 2, y1), 255, pen, cv2.LINE_AA)
    else:  # a zigzag scribble over the word
        step = max(3, size // 4)
        points = [
            (x, int(y + (0.35 if k % 2 else -0.35) * size)) for k, x in enumerate(range(x0, x1 + 1, step))
        ]
        cv2.polylines(canvas, [np.array(points, np.int32)], False, 255, pen, cv2.LINE_AA)


def _elastic(canvas: np.ndarray, size: int, rng: random.Random) -> np.ndarray:
    """Bend the strokes: each pixel moves by a smooth random field (cells of about half a glyph), up to
    ~5 % of the glyph size, so the same letter differs along the line as it does in one hand."""
    h, w = canvas.shape
    np_rng = np.random.default_rng(rng.getrandbits(64))
    cell = max(4, size // 2)
    amplitude = rng.uniform(0.02, 0.05) * size
    grid = (h // cell + 2, w // cell + 2)
    dx, dy = (
        cv2.resize(
            np_rng.normal(0, amplitude, grid).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
        for _ in range(2)
    )
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(canvas, xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0)


def _rotate(mask: np.ndarray, degrees: float) -> tuple[np.ndarray, int, int]:
    """Rotate a glyph about its centre into a grown bitmap (nothing cut); returns it and how much it grew left/up."""
    h, w = mask.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(h * sin + w * cos + 1), int(h * cos + w * sin + 1)
    dx, dy = (new_w - w) // 2, (new_h - h) // 2
    matrix[0, 2] += dx
    matrix[1, 2] += dy
    return cv2.warpAffine(mask, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR), dx, dy


def _crop_to_ink(canvas: np.ndarray, baseline: float, pad: int) -> tuple[np.ndarray, float]:
    """The ink's bounding box (plus `pad` pixels) and the baseline row within it; blank text gives a small blank."""
    rows = np.flatnonzero(canvas.max(axis=1))
    cols = np.flatnonzero(canvas.max(axis=0))
    if not len(rows):
        return np.zeros((16, 16), np.uint8), 12.0
    top = max(0, rows[0] - pad)
    canvas = canvas[top : rows[-1] + 1 + pad, max(0, cols[0] - pad) : cols[-1] + 1 + pad]
    return canvas, baseline - top


def _shear(canvas: np.ndarray, shear: float, baseline: float) -> np.ndarray:
    """Slant the line (shear about the baseline so glyphs keep their horizontal place)."""
    if abs(shear) < 1e-3:
        return canvas
    h, w = canvas.shape
    grow = math.ceil(abs(shear) * h)  # the slanted line is wider than the upright one
    shift = shear * baseline + (grow if shear > 0 else 0)
    matrix = np.float32([[1, -shear, shift], [0, 1, 0]])
    return cv2.warpAffine(canvas, matrix, (w + grow, h), flags=cv2.INTER_LINEAR)


@cache
def font_stroke_width(font: str) -> float:
    """The font's typical stroke width at the middle glyph size: ink area / half its outline length.

    Measured on glyphs drawn 4x larger, where a hairline is several pixels wide and its outline is meaningful.
    """
    upscale = 4
    masks = [glyph(font, GLYPH_SIZES[1] * upscale, c).mask > 127 for c in "nhoamuei"]
    area = sum(int(m.sum()) for m in masks)
    eroded = [cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) for m in masks]
    outline = sum(int((m & ~e).sum()) for m, e in zip(masks, eroded))
    return 2.0 * area / max(outline, 1) / upscale


def _pen_width(
    canvas: np.ndarray,
    font_width: float,
    rng: random.Random,
    pens: tuple[float, float] = (1.5, 4.0),
    max_thinning: int = 1,
) -> np.ndarray:
    """A ballpoint draws a near-even stroke: thicken hairline fonts to a drawn pen width, thin heavy ones.

    Pen widths are at glyph scale (size 36): 1.5-4 pixels there is a fine to broad ballpoint in a line.
    A heavy font is thinned by at most `max_thinning` one-pixel erosions.
    """
    pen = rng.uniform(*pens)
    grow = round(pen - font_width)
    if grow >= 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow + 1, grow + 1))
        return cv2.dilate(canvas, kernel)
    if grow <= -1:
        return cv2.erode(canvas, np.ones((2, 2), np.uint8), iterations=min(-grow, max_thinning))
    return canvas
