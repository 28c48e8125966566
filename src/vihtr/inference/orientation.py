"""Which way up a page or a line is, where a photo has no EXIF turn (or a wrong one).

- **Sideways** (90° or 270°), from the ink alone: lines of writing make the rows of ink far more uneven than
  its columns.
- **Upside down** is told apart by reading: the recogniser is far less sure of writing turned over
  (`vihtr.inference.pages.PageReader`, `Predictor`).

Turns are counter-clockwise, in degrees, as PIL's `Image.transpose` and `numpy.rot90` turn.
Measured on turned held-out pages and lines by `scripts/page_benchmark.py --orientation`.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from vihtr.inference.layout import Box, ink_mask

LOOK_SIDE = 1200  # sideways is judged on the image at most this large
TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def sideways(image: Image.Image) -> bool:
    """Whether the writing runs up or down the image: its columns of ink are more uneven than its rows."""
    rgb = np.asarray(image.convert("RGB"))
    scale = min(1.0, LOOK_SIDE / max(rgb.shape[:2]))
    if scale < 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink = ink_mask(rgb)
    if not ink.any():
        return False
    return _unevenness(ink.sum(axis=0)) > 1.25 * _unevenness(ink.sum(axis=1))


def turned(image: Image.Image, turn: int) -> Image.Image:
    """The image turned counter-clockwise by `turn` degrees (a multiple of 90), with no loss."""
    turn %= 360
    return image.transpose(TURNS[turn]) if turn else image


def box_before_turn(box: Box, turn: int, size: tuple[int, int]) -> Box:
    """A box on the image turned by `turn`, as a box on the image before the turn (of `size` w, h)."""
    x0, y0, x1, y1 = box
    w, h = size
    turn %= 360
    if turn == 90:
        return w - y1, x0, w - y0, x1
    if turn == 180:
        return w - x1, h - y1, w - x0, h - y0
    if turn == 270:
        return y0, h - x1, y1, h - x0
    return box


def _unevenness(sums: np.ndarray) -> float:
    """Coefficient of variation of ink sums across the inked span."""
    inked = np.flatnonzero(sums)
    span = sums[inked[0] : inked[-1] + 1].astype(np.float64)
    return float(span.std() / max(span.mean(), 1e-9))
