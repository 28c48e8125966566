"""Handwritten pages with exact line boxes, to measure (and tune) page reading.

- **VNOnDB screens**: each InkML file holds one writer's text over several tablet screens, and the lines of one
  screen keep their tablet positions (`InkLine.screen`). Drawing one screen gives a real handwritten page:
  lines that touch, descenders that cross the next line's tone marks, the writer's own slope and spacing.
- **Kalapa forms**: real address-line scans stacked on a form, each above a ruled line or inside a box.
- **Photo** renderings of either: grey paper, uneven light, ±2° rotation, blur and sensor noise.

Every page also carries each line drawn alone on the same paper (`Page.alone`): the ideal crop that page
reading is compared with (same pixels, no neighbour's ink).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vihtr.data.sources.inkml import InkLine, RenderStyle, draw_strokes, ink_bounds, ink_on_paper, inkml_lines
from vihtr.text.normalize import normalize_text

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive)


@dataclass
class Page:
    key: str
    image: Image.Image
    texts: list[str]  # top to bottom
    boxes: list[Box]  # each line's ink box on `image`
    alone: list[Image.Image] = field(default_factory=list)  # each line alone, cropped at its box

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


def vnondb_screens(path: str | Path, keys: set[str] | None = None, min_lines: int = 2) -> list[list[InkLine]]:
    """The screens of a VNOnDB archive (or folder) as lists of lines in writing order; `keys` keeps the
    screens whose lines are all in it (a fold's lines), `min_lines` drops near-empty screens."""
    screens: dict[tuple[str, int], list[InkLine]] = defaultdict(list)
    for line in inkml_lines(path):
        if line.screen >= 0:
            screens[line.key.partition("#")[0], line.screen].append(line)
    return [
        lines
        for _, lines in sorted(screens.items())
        if len(lines) >= min_lines and (keys is None or all(line.key in keys for line in lines))
    ]


def render_screen(
    lines: Sequence[InkLine],
    rng: random.Random,
    line_height: tuple[float, float] = (45, 100),
    style: RenderStyle | None = None,
    photo: bool = False,
) -> Page:
    """One tablet screen drawn as a page, its median line `line_height` pixels high (drawn from the range)."""
    style = style or RenderStyle(noise=(0.0, 4.0))
    np_rng = np.random.default_rng(rng.getrandbits(64))
    bands = [np.subtract(*ink_bounds(line.points)[::-1])[1] for line in lines]
    scale = rng.uniform(*line_height) / max(float(np.median(bands)), 1e-6)
    slant, aspect = rng.uniform(-style.slant, style.slant) / 2, rng.uniform(0.9, 1.15)
    pen = max(1.0, rng.uniform(*style.pen_width) * float(np.median(bands)) * scale)
    drawn = []
    for line in lines:
        pts = line.points.astype(np.float64)
        low, high = ink_bounds(pts)
        keep = np.all((pts >= low) & (pts <= high), axis=1)  # a stray tap far off the line is not drawn
        pts, ends = _kept_points(pts, line.stroke_ends, keep)
        y_mid = (low[1] + high[1]) / 2
        pts[:, 0] += slant * (y_mid - pts[:, 1])  # slant about the line's own centre: lines stay in place
        pts[:, 0] *= aspect
        drawn.append((pts * scale, ends))
    every = np.concatenate([p for p, _ in drawn])
    margin = rng.uniform(0.6, 1.5) * float(np.median(bands)) * scale
    offset = margin - every.min(0)
    width, height = (np.ceil(every.max(0) + offset + margin)).astype(int)
    masks, boxes = [], []
    for pts, ends in drawn:
        pts = pts + offset + np_rng.normal(0.0, style.jitter * pen, pts.shape)
        mask = np.zeros((height, width), np.uint8)
        draw_strokes(mask, pts, ends, max(1, round(pen)))
        masks.append(mask)
        boxes.append(_mask_box(mask))
    texts = [normalize_text(line.text) for line in lines]
    page_seed, alone_seed = rng.getrandbits(64), rng.getrandbits(64)
    key = f"{lines[0].key.partition('#')[0]}#screen{lines[0].screen}"
    return _finish(key, masks, boxes, texts, page_seed, alone_seed, style, photo)


def _kept_points(pts: np.ndarray, stroke_ends: np.ndarray, keep: np.ndarray):
    strokes = [s[k] for s, k in zip(np.split(pts, stroke_ends[:-1]), np.split(keep, stroke_ends[:-1]))]
    strokes = [s for s in strokes if len(s)]
    return np.concatenate(strokes), np.cumsum([len(s) for s in strokes])


def _mask_box(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask > 64)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _writing_box(scan: np.ndarray) -> Box:
    """Where a grey scan's writing is: pixels clearly darker than its paper (under 0.78 of its 90th percentile
    and 20 levels below it), without the form's printed rules and the scan's dark edges (straight runs longer
    than half its height or a third of its width) and specks; the whole scan when nothing is left. A rule
    that touches the writing may still widen the box."""
    paper = float(np.percentile(scan, 90))
    ink = ((scan < 0.78 * paper) & (paper - scan > 20)).astype(np.uint8)
    h, w = ink.shape
    rules = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((max(2, h // 2), 1), np.uint8))
    rules |= cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, max(2, w // 3)), np.uint8))
    ink &= ~cv2.dilate(rules, np.ones((3, 3), np.uint8))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    kept = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= max(4, h * h // 400)) + 1
    if not len(kept):
        return 0, 0, w, h
    return _mask_box(np.isin(labels, kept).astype(np.uint8) * 255)


def _finish(key, masks, boxes, texts, page_seed, alone_seed, style, photo) -> Page:
    """Ink every mask on the same paper: all together (the page) and each alone (its ideal crop)."""
    page = ink_on_paper(np.max(masks, axis=0), random.Random(page_seed), _np(page_seed), style)
    alone_pages = [ink_on_paper(m, random.Random(page_seed), _np(page_seed), style) for m in masks]
    if photo:
        effect = PhotoEffect.draw(random.Random(alone_seed))
        page, boxes = effect.apply(page, boxes)
        alone_pages = [effect.apply(a, [])[0] for a in alone_pages]
    alone = [a.crop(_padded(b, a.size, 6)) for a, b in zip(alone_pages, boxes)]
    return Page(key, page, texts, boxes, alone)


def _np(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _padded(box: Box, size: tuple[int, int], pad: int) -> Box:
    x0, y0, x1, y1 = box
    return max(0, x0 - pad), max(0, y0 - pad), min(size[0], x1 + pad), min(size[1], y1 + pad)


@dataclass(frozen=True)
class PhotoEffect:
    """A phone photo of a page: rotation, darker uneven paper, blur and noise, each drawn once per page."""

    angle: float
    light: float  # how much darker the far corner is (grey levels)
    grey: float  # paper dimmed by this factor
    blur: float
    noise: float
    seed: int

    @classmethod
    def draw(cls, rng: random.Random, max_angle: float = 2.0) -> PhotoEffect:
        return cls(
            angle=rng.uniform(-max_angle, max_angle),
            light=rng.uniform(10, 50),
            grey=rng.uniform(0.72, 0.92),
            blur=rng.uniform(0.4, 1.3),
            noise=rng.uniform(2, 8),
            seed=rng.getrandbits(32),
        )

    def apply(self, image: Image.Image, boxes: Sequence[Box]) -> tuple[Image.Image, list[Box]]:
        """The photo and the boxes moved with it (axis-aligned boxes of the rotated boxes)."""
        rgb = np.asarray(image, np.float32)
        h, w = rgb.shape[:2]
        rotation = cv2.getRotationMatrix2D((w / 2, h / 2), self.angle, 1.0)
        cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
        out_w, out_h = int(math.ceil(w * cos + h * sin)), int(math.ceil(w * sin + h * cos))
        rotation[:, 2] += ((out_w - w) / 2, (out_h - h) / 2)
        rgb = cv2.warpAffine(
            rgb, rotation, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
        shade = self.light * (xx / out_w + yy / out_h) / 2  # light from one corner
        rgb = rgb * self.grey - shade[..., None]
        rgb = cv2.GaussianBlur(rgb, (0, 0), self.blur)
        rgb += (
            np.random.default_rng(self.seed).standard_normal(rgb.shape[:2], np.float32)[..., None]
            * self.noise
        )
        moved = []
        for x0, y0, x1, y1 in boxes:
            corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ rotation.T
            lo, hi = corners.min(0), corners.max(0)
            moved.append((int(lo[0]), int(lo[1]), int(math.ceil(hi[0])), int(math.ceil(hi[1]))))
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"), moved


def kalapa_form(
    lines: Sequence[tuple[Image.Image, str]],
    rng: random.Random,
    line_height: tuple[float, float] = (50, 90),
    photo: bool = False,
) -> Page:
    """Real address-line scans stacked on a white form, each above a ruled line or inside a ruled box. A line's
    true box is its writing's box in the scan (`_writing_box`), as a VNOnDB line's is its strokes'."""
    target = rng.uniform(*line_height)
    scans = [
        img.convert("L").resize((max(1, round(img.width * target / img.height)), round(target)))
        for img, _ in lines
    ]
    gap = rng.uniform(0.3, 0.9) * target
    boxed = rng.random() < 0.5
    left = round(rng.uniform(0.3, 1.0) * target)
    width = left * 2 + max(s.width for s in scans) + round(rng.uniform(0, 2) * target)
    height = round(2 * gap + sum(s.height for s in scans) + gap * (len(scans) - 1) + target)
    form = np.full((height, width), rng.uniform(235, 252), np.float32)
    boxes, y = [], round(gap + target / 2)
    rule = rng.uniform(60, 140)
    for scan in scans:
        x = left + round(rng.uniform(0, 0.5) * target)
        x = min(x, width - scan.width)
        pixels = np.asarray(scan, np.float32)
        region = form[y : y + scan.height, x : x + scan.width]
        np.minimum(region, pixels * region.max() / max(float(np.percentile(pixels, 90)), 1.0), out=region)
        bx0, by0, bx1, by1 = _writing_box(pixels)
        boxes.append((x + bx0, y + by0, x + bx1, y + by1))
        bottom = y + scan.height + round(0.1 * target)
        thickness = rng.choice((1, 1, 2))
        cv2.line(form, (left // 2, bottom), (width - left // 2, bottom), rule, thickness)
        if boxed:
            top = y - round(0.15 * target)
            cv2.line(form, (left // 2, top), (width - left // 2, top), rule, thickness)
            for side in (left // 2, width - left // 2):
                cv2.line(form, (side, top), (side, bottom), rule, thickness)
        y += scan.height + round(gap)
    image = Image.fromarray(np.clip(form, 0, 255).astype(np.uint8)).convert("RGB")
    texts = [text for _, text in lines]
    alone = [scan.convert("RGB") for scan in scans]
    if photo:
        effect = PhotoEffect.draw(rng)
        image, boxes = effect.apply(image, boxes)
        # each line alone as the photo shows it (grey, blurred, noisy), upright: what a perfect cut would give
        flat = dataclasses.replace(effect, angle=0.0)
        alone = [flat.apply(line, [])[0] for line in alone]
    return Page(f"form{rng.getrandbits(24):06x}", image, texts, boxes, alone)


PAGE_KINDS = ("vnondb", "vnondb-photo", "kalapa-form", "kalapa-form-photo")


def page_set(kind: str, fold: int, count: int | None = None, seed: int = 0) -> list[Page]:
    """Pages made from the lines of one writer fold (fold 0 is held out: measure on it, tune on 1-4).

    `vnondb[-photo]`: tablet screens of the fold's writers (all of them, or `count` drawn by `seed`);
    `kalapa-form[-photo]`: `count` forms (default 20) of 4-8 lines, each form one writer's lines."""
    from vihtr.data.sources.inkml import InkMLSource
    from vihtr.data.sources.real import LineFolderSource
    from vihtr.paths import cache_dir, kalapa_root, vnondb_archive

    if kind not in PAGE_KINDS:
        raise ValueError(f"kind must be one of {PAGE_KINDS}, got {kind!r}")
    rng = random.Random(seed)
    photo = kind.endswith("-photo")
    if kind.startswith("vnondb"):
        keys = set(InkMLSource(vnondb_archive(), cache_dir=cache_dir("vnondb"), fold=fold, split="val").keys)
        screens = vnondb_screens(vnondb_archive(), keys)
        if count is not None and count < len(screens):
            screens = rng.sample(screens, count)
        return [render_screen(s, random.Random(rng.getrandbits(64)), photo=photo) for s in screens]
    source = LineFolderSource(kalapa_root(), fold=fold, split="val")
    by_writer: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(source.groups):
        by_writer[group].append(index)
    writers = sorted(by_writer)
    pages = []
    for _ in range(count or 20):
        writer = by_writer[rng.choice(writers)]
        chosen = rng.sample(writer, min(len(writer), rng.randint(4, 8)))
        lines = [(source.get(i, rng).image, source.texts[i]) for i in chosen]
        pages.append(kalapa_form(lines, random.Random(rng.getrandbits(64)), photo=photo))
    return pages
