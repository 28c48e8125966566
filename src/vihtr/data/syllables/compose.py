"""Write any text in a real writer's hand: that writer's syllables from the bank, laid out with its spacing.

A syllable the writer never wrote is borrowed from the writer of nearest size (`SyllableBank.pick`). Each
syllable is varied a little (scale, shear, rotation, a baseline that wanders), so the same syllable never
lands twice the same; the pen, paper and scan come from the renderers the real and synthetic lines use.
"""

from __future__ import annotations

import math
import random
from collections.abc import Container
from dataclasses import dataclass

import numpy as np

from vihtr.data.sources.inkml import draw_strokes
from vihtr.data.syllables.bank import SyllableBank


@dataclass(frozen=True)
class ComposeStyle:
    """Per-line and per-syllable variation; lengths in ink-band units."""

    # the writers' own gaps, scaled per line. The gaps kept are those beside cleanly cut syllables, wider than
    # most: lines come out 28 % wider per character than real ones. At 0.4-0.75 they are 14 % wider, but the
    # realism CNN told them from real VNOnDB lines more often (91.6 % against 84.8 %, models/README.md)
    gap_scale: tuple[float, float] = (0.8, 1.25)
    scale: float = 0.06  # each syllable's size, drawn in [1 - scale, 1 + scale]
    shear: float = 0.06  # each syllable's slant change
    rotate: float = 2.0  # degrees, each syllable
    drift: float = 0.04  # the baseline's random walk per syllable


def missing(bank: SyllableBank, text: str) -> list[str]:
    """The tokens of `text` that no writer in the bank wrote."""
    return [t for t in text.split(" ") if t not in bank]


def compose(
    bank: SyllableBank, text: str, writer: str, rng: random.Random, style: ComposeStyle | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`text` (tokens all in the bank) in `writer`'s hand -> (float32 points (N, 2), stroke ends), in band
    units, y down."""
    style = style or ComposeStyle()
    tokens = text.split(" ")
    unknown = missing(bank, text)
    if unknown:
        raise KeyError(f"no writer in the bank wrote {unknown!r}")
    gaps = bank.gaps.get(writer)
    if gaps is None or not len(gaps):
        gaps = np.concatenate(list(bank.gaps.values()))
    stretch = rng.uniform(*style.gap_scale)
    x, y = 0.0, 0.0
    parts, ends, total = [], [], 0
    for i, token in enumerate(tokens):
        syllable = bank.pick(token, writer, rng)
        pts = _vary(syllable.points, rng, style)
        if i:
            x += max(0.05, float(gaps[rng.randrange(len(gaps))]) * stretch)
        y += rng.gauss(0.0, style.drift)
        pts = pts - [pts[:, 0].min() - x, -y]
        x = float(pts[:, 0].max())
        parts.append(pts)
        ends.append(syllable.stroke_ends + total)
        total += len(pts)
    return np.concatenate(parts).astype(np.float32), np.concatenate(ends)


def _vary(points: np.ndarray, rng: random.Random, style: ComposeStyle) -> np.ndarray:
    """A small random affine change about the syllable's centre line (y = 0 is its line's middle)."""
    angle = math.radians(rng.uniform(-style.rotate, style.rotate))
    s = rng.uniform(1 - style.scale, 1 + style.scale)
    shear = rng.uniform(-style.shear, style.shear)
    cos, sin = math.cos(angle), math.sin(angle)
    matrix = s * np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]])
    centre = np.array([points[:, 0].mean(), 0.0])
    return (points - centre) @ matrix.T + centre


def longest_run(tokens: list[str], known: Container[str]) -> list[str]:
    """The longest stretch of consecutive tokens that are all in `known` (the first, on ties)."""
    best, start = (0, 0), 0
    for i, token in enumerate([*tokens, None]):
        if token is None or token not in known:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = i + 1
    return tokens[best[0] : best[1]]


BAND_PX = 24  # a syllable's ink band at glyph scale, the size the font renderer draws at before fitting
# the form look fits the whole ink (marks and tails too) to the real lines' ink height, which leaves tablet
# writing narrower than the scans: 14.3 against 19.5 px per character at 48 px (medians, scripts/realism.py)
FORM_STRETCH = (1.15, 1.55)


def ink_mask(points: np.ndarray, stroke_ends: np.ndarray, rng: random.Random) -> tuple[np.ndarray, float]:
    """Composed strokes (band units) as an ink mask at glyph scale, cropped to the ink, and its baseline row:
    what `LineRenderer.render_ink` lays on paper. A fine ballpoint, as the forms are filled with."""
    pen = rng.uniform(0.8, 2.0)
    pts = points * BAND_PX * [rng.uniform(*FORM_STRETCH), 1.0]
    pts = pts - pts.min(0) + pen + 1
    height, width = (int(np.ceil(v)) + int(pen) + 3 for v in pts.max(0)[::-1])
    mask = np.zeros((height, width), np.uint8)
    draw_strokes(mask, pts, stroke_ends, max(1, round(pen)))
    baseline = float(
        pts[:, 1].min() - points[:, 1].min() * BAND_PX + 0.5 * BAND_PX
    )  # half a band below the middle
    return mask, baseline
