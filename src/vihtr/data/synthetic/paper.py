"""Real form paper for synthetic lines: Kalapa training crops with their handwriting taken out.

A Kalapa crop is a phone photo of one form box: tinted paper (grey, bluish, lavender), uneven light, the
box's ruled borders (often a vertical border with the page beyond it on the right), JPEG noise. No
procedural paper looked like it (issue 9); the crops themselves, without their ink, do.

Ink is found by a grey-level closing (a max then a min filter wider than a pen stroke): what the closing
lifts is ink. The closing also lifts the ruled borders, which are as thin as a stroke but long: they are
found in what it lifted (a horizontal or vertical opening keeps only long runs) and left in place. The ink's
place is then inpainted from the paper around it (the closing's own fill is the brightest paper nearby, a
light patch where the writing was). Each crop also gives its pen colour (the mean of the darkest tenth of
its handwriting's pixels, borders excluded), so a background carries the pen it was written with.

Only writers outside the held-out fold are used: a score is never measured on paper the model trained on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from vihtr.paths import cache_dir, data_root, kalapa_root

log = logging.getLogger(__name__)

# backgrounds are kept at this height (renderers scale them): ~19 KB per 100 px of width
PAPER_HEIGHT = 64
STROKE_KERNEL = 9  # closing size at PAPER_HEIGHT: wider than a ballpoint stroke with its blur (3-6 px there)
BORDER_DARKNESS = 20  # grey levels a border is darker than the cleaned paper around it
INK_STEP = 12  # grey levels below the closed paper that count as ink
PAPER_VERSION = 5  # bump when clean_paper changes: the disk cache is keyed by it
INK_PERCENTILE = 10  # the darkest 10 % of a crop's handwriting pixels give its pen colour


@dataclass(frozen=True)
class Paper:
    image: np.ndarray  # uint8 HxWx3 RGB, PAPER_HEIGHT rows, no handwriting
    ink: tuple[int, int, int]  # RGB of the pen the crop was written with


def clean_paper(rgb: np.ndarray) -> Paper:
    """A crop (uint8 HxWx3 RGB, any size) -> its paper at PAPER_HEIGHT with the handwriting removed."""
    h, w = rgb.shape[:2]
    width = max(PAPER_HEIGHT, round(w * PAPER_HEIGHT / h))
    small = cv2.resize(rgb, (width, PAPER_HEIGHT), interpolation=cv2.INTER_AREA)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (STROKE_KERNEL, STROKE_KERNEL))
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    darkening = (closed.astype(np.int16) - small).max(axis=2)  # how much darker than its paper each pixel is
    removed = (darkening > BORDER_DARKNESS).astype(np.uint8)
    rules = cv2.morphologyEx(removed, cv2.MORPH_OPEN, np.ones((1, max(8, width // 6)), np.uint8))
    rules |= cv2.morphologyEx(removed, cv2.MORPH_OPEN, np.ones((int(0.85 * PAPER_HEIGHT), 1), np.uint8))
    rules = cv2.dilate(rules, np.ones((3, 3), np.uint8)).astype(bool)  # the anti-aliased edges too
    # only the ink (and its soft edge) takes the closing's paper: elsewhere the photo's own grain and light stay
    lifted = darkening > INK_STEP
    ink_area = cv2.dilate(lifted.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~rules
    # the pen: the darkest handwriting pixels (the ruled borders are often another, printed, colour)
    strokes = lifted & ~rules
    ink_pixels = small[strokes] if strokes.any() else small.reshape(-1, 3)
    ink_grey = ink_pixels.mean(axis=1)
    ink_pixels = ink_pixels[ink_grey <= np.percentile(ink_grey, INK_PERCENTILE)]
    ink = tuple(int(c) for c in ink_pixels.mean(axis=0))
    cleaned = small.copy()
    cleaned[ink_area] = closed[ink_area]
    # the closing's fill is the brightest paper nearby: inpainting, seeded with it, brings the paper's own level
    cleaned = cv2.inpaint(cleaned, ink_area.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return Paper(image=cleaned, ink=ink)


@lru_cache(maxsize=512)  # ~0.2 MB each: a bounded cache shared by every source of a process
def _load_paper(path: str) -> Paper:
    """A crop's clean paper: cleaned once per machine (~40 ms) and kept as a small file (~1 ms to read)."""
    stat = os.stat(path)
    key = hashlib.sha1(f"{PAPER_VERSION}:{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    cached = cache_dir("paper", key[:2], f"{key}.npz")
    if cached.is_file():
        with np.load(cached) as saved:
            return Paper(image=saved["image"], ink=tuple(int(c) for c in saved["ink"]))
    # decoded at half size (twice as fast): a scan stays taller than PAPER_HEIGHT
    image = cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_2)
    if image is not None and image.shape[0] < PAPER_HEIGHT:  # a small crop (packed data): its full size
        image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"not a readable image: {path}")
    paper = clean_paper(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.stem}.{os.getpid()}.npz")
    np.savez(tmp, image=paper.image, ink=np.array(paper.ink))
    tmp.replace(cached)  # atomic: DataLoader workers may clean the same crop at once
    return paper


class PaperBank:
    """The training writers' Kalapa crops as clean backgrounds: `sample(rng)` -> a `Paper`.

    root: the real data folder (default: `vihtr.paths.data_root()`); held_out_fold: the writer fold never used (None:
    every writer). `PaperBank.maybe(...)` returns None where there is no real data, so a fresh machine
    renders on procedural paper instead.
    """

    def __init__(self, root: str | os.PathLike | None = None, held_out_fold: int | None = 0) -> None:
        from vihtr.data.sources.real import LineFolderSource

        folder = kalapa_root(root)
        source = LineFolderSource(folder, fold=held_out_fold, split="train")
        self.paths = [str(source.root / key) for key in source.keys]
        if not self.paths:
            raise FileNotFoundError(f"no Kalapa training crops under {folder}")

    @classmethod
    def maybe(cls, root: str | os.PathLike | None = None, held_out_fold: int | None = 0) -> PaperBank | None:
        labels = kalapa_root(root) / "labels.tsv"
        if not labels.is_file():
            log.warning("no real data under %s: synthetic lines use procedural paper", labels.parent.parent)
            return None
        return _bank(str(Path(root or data_root())), held_out_fold)

    def __len__(self) -> int:
        return len(self.paths)

    def sample(self, rng: random.Random) -> Paper:
        for _ in range(10):  # a corrupt crop is skipped, never fatal
            path = rng.choice(self.paths)
            try:
                return _load_paper(path)
            except ValueError as e:
                log.warning("paper bank: %s", e)
        raise ValueError("paper bank: no readable crop in 10 draws")


@lru_cache(maxsize=8)
def _bank(root: str, held_out_fold: int | None) -> PaperBank:
    return PaperBank(root, held_out_fold)
