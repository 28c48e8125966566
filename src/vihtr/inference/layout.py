"""Find the handwritten lines of a page: where each line is, and its image cut out upright with its tone marks.

Classical, measured against real handwritten pages (`vihtr.data.pages`, `scripts/page_benchmark.py`):
1. the paper is estimated by a wide max filter and divided out, so uneven light and grey paper do not matter;
   ink is what is clearly darker than its own paper;
2. the skew is the angle (within ±`max_skew`°) that makes the row profile of the ink sharpest;
3. ruled lines and form boxes are taken out: long level segments (Hough, in faint ink, so a light rule in a
   photo is still whole) and upright runs longer than a letter (a letter's long stroke at either end of a
   line is given back to it once the lines are found);
4. lines start as the peaks of the smoothed row profile and are refitted as a straight line each; each piece
   of ink goes to its nearest line (a tone mark between two lines to the line below), a piece two lines
   share (a descender touching the marks below) is cut per pixel, far-off letters seed a line of their own;
5. each line is cropped from the deskewed page, with paper beside it and the other lines' ink painted out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 on the input image (x1, y1 exclusive)

WORK_SIDE = 2400  # pages are searched at most this large: lines stay tens of pixels high, search stays fast
PAPER_KERNEL = 31  # wider than any pen stroke at working size: the max filter sees only paper
INK_RATIO = 0.78  # ink is darker than this fraction of its own paper
LINE_SHAPE = 8  # an image at least 8 times as wide as it is high is one line, whatever its tone marks suggest
SIDE_PAD = 0.6  # paper kept beside a line's writing, in line heights (read better than 0.15 or 1.2)
TOP_PAD = 0.15  # paper kept above and below a line's ink, in line heights
MARK_SPLIT = 0.35  # Vietnamese marks sit above their letters: most of the gap above a line is its marks'
MAX_SPACING = 6.0  # lines lie at most this many typical ink heights apart (1 to 6 on tuning pages)
WEAK_PERIOD = 0.08  # an autocorrelation peak this high can still be the lines' period
GIVE_BACK_REACH = 3.0  # a line's first or last letter's upright stroke lies this many ink heights off its ink
SHARED_SHARE = 0.2  # a piece of ink with this much of itself in each of two lines is cut between them


@dataclass(frozen=True)
class FoundLine:
    box: Box  # where the line is on the input image
    image: Image.Image  # the line, upright, other lines' ink painted out
    height: float  # the line's typical ink height at working size (pixels)


def find_lines(image: Image.Image, max_skew: float = 3.0) -> list[FoundLine]:
    """The handwritten lines of a page image, top to bottom; [] when it holds no writing."""
    rgb = np.asarray(image.convert("RGB"))
    scale = min(1.0, WORK_SIDE / max(rgb.shape[:2]))
    if scale < 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    paper = paper_of(rgb)
    ink = ink_mask(rgb, paper)
    # rules are looked for in fainter ink too: a light printed rule, blurred in a photo, breaks up at the ink level
    faint = ink_mask(rgb, paper, ratio=0.9, contrast=10)
    angle = _skew(ink, max_skew)  # ruled lines, where there are any, make the skew all the clearer
    rotation = _rotation(ink.shape, angle)
    size = rotation.size
    if angle:
        ink = cv2.warpAffine(ink, rotation.matrix, size, flags=cv2.INTER_NEAREST)
        rgb = cv2.warpAffine(
            rgb, rotation.matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        paper = cv2.warpAffine(
            paper, rotation.matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        faint = cv2.warpAffine(faint, rotation.matrix, size, flags=cv2.INTER_NEAREST)
    rules, upright = _rules(faint, ink, _piece_height(ink))
    strokes = ink & upright  # long upright strokes: kept out of grouping, given back to their lines after
    ink &= ~(rules | upright)
    # pieces are found on ink with its small breaks closed (a faint pen breaks up), pixels kept as they are
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(
        cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)), connectivity=8
    )
    labels[ink == 0] = 0
    if n <= 1:
        return []
    heights, areas = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    height = _typical_height(heights, areas)
    speck = areas < max(4.0, (0.08 * height) ** 2)
    labels[np.isin(labels, np.flatnonzero(speck) + 1)] = 0
    if speck.all():
        return []
    spacing = _line_spacing(labels > 0, min_lag=max(8, round(0.6 * height)), max_lag=MAX_SPACING * height)
    owner = _assign(labels, n, stats, centroids, spacing or 2.2 * height, height)
    _give_back(owner, strokes, height)
    height = min(height, spacing or height)
    lines = []
    for index in range(int(owner.max()) + 1):
        mine = owner == index
        ys, xs = np.nonzero(mine)
        if len(ys) == 0:  # every piece of this line went to its neighbours
            continue
        keep = _without_far_strays(xs, float(np.percentile(ys, 95) - np.percentile(ys, 5)))
        keep &= _without_flat_strays(mine, ys, xs)
        if not keep.all():  # bits of a rule or specks far beside the writing are not part of the line
            mine[ys[~keep], xs[~keep]] = False
            ys, xs = ys[keep], xs[keep]
        if len(ys) < max(10.0, 0.05 * height**2):  # a few stray pixels, not a line
            continue
        pad = max(2, round(TOP_PAD * height))
        side = max(2, round(SIDE_PAD * height))  # lines were learnt with paper before and after the writing
        x0, y0 = max(0, xs.min() - side), max(0, ys.min() - pad)
        x1, y1 = min(size[0], xs.max() + 1 + side), min(size[1], ys.max() + 1 + pad)
        crop = rgb[y0:y1, x0:x1].copy()
        others = cv2.dilate(
            ((owner[y0:y1, x0:x1] >= 0) & ~mine[y0:y1, x0:x1]).astype(np.uint8), np.ones((3, 3))
        )
        crop[others > 0] = paper[y0:y1, x0:x1][others > 0]
        # where the line is: its ink and a margin; the crop keeps more paper beside it for the reader
        box = rotation.back(
            (max(0, xs.min() - pad), y0, min(size[0], xs.max() + 1 + pad), y1), scale, image.size
        )
        lines.append((ys.mean(), FoundLine(box, Image.fromarray(crop), float(height))))
    if len(lines) > 1 and image.width >= LINE_SHAPE * image.height:
        return [FoundLine((0, 0, image.width, image.height), image.convert("RGB"), float(height))]
    return [line for _, line in sorted(lines, key=lambda item: item[0])]


def paper_of(rgb: np.ndarray) -> np.ndarray:
    """The paper under the writing: a max filter wider than any stroke, smoothed (light and shade kept)."""
    return cv2.blur(cv2.dilate(rgb, _disc(PAPER_KERNEL)), (PAPER_KERNEL, PAPER_KERNEL))


def ink_mask(
    rgb: np.ndarray, paper: np.ndarray | None = None, ratio: float = INK_RATIO, contrast: float = 20
) -> np.ndarray:
    """255 where the image is clearly darker than its own paper (under `ratio` of it and `contrast` levels
    below), pepper noise removed; 0 elsewhere."""
    paper = paper_of(rgb) if paper is None else paper
    gray, paper_gray = (cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float32) for a in (rgb, paper))
    ink = ((gray < ratio * paper_gray) & (paper_gray - gray > contrast)).astype(np.uint8) * 255
    return cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))


def _without_far_strays(xs: np.ndarray, height: float, gap: float = 2.0, share: float = 0.1) -> np.ndarray:
    """Which of a line's ink pixels (by column) to keep: the columns from the first to the last stretch of
    writing that holds at least `share` of the line's ink, stretches being split where no ink runs for
    `gap` times the line's `height` (its ink's)."""
    if len(xs) == 0:
        return np.ones(0, bool)
    columns = np.bincount(xs - xs.min())
    filled = np.flatnonzero(columns)
    breaks = np.flatnonzero(np.diff(filled) > gap * height)
    starts = np.concatenate([[filled[0]], filled[breaks + 1]])
    ends = np.concatenate([filled[breaks], [filled[-1]]])
    ink = np.array([columns[a : b + 1].sum() for a, b in zip(starts, ends)])
    big = np.flatnonzero(ink >= share * ink.sum())
    if not len(big):  # ink spread evenly over many stretches: nothing stands out as a stray
        return np.ones(len(xs), bool)
    lo, hi = starts[big[0]] + xs.min(), ends[big[-1]] + xs.min()
    return (xs >= lo) & (xs <= hi)


def _without_flat_strays(mine: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Which of a line's ink pixels (`mine`, at `ys`, `xs`) to keep, without flat pieces well above or below
    its writing: a rule's remnant or a box's corner, which would stretch the crop so the reader sees the
    writing small. A piece is flat when at least four times as wide as high and no higher than a tenth of
    the writing's band; tone marks and dots, however far above or below, are not."""
    low, high = np.percentile(ys, [5, 95])
    band = max(float(high - low), 1.0)
    y0, x0 = int(ys.min()), int(xs.min())
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        mine[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1].astype(np.uint8), connectivity=8
    )
    top, h, w = stats[:, cv2.CC_STAT_TOP] + y0, stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_WIDTH]
    flat = (h <= max(3.0, 0.1 * band)) & (w >= 4 * h)
    away = (top + h - 1 < low - 0.3 * band) | (top > high + 0.3 * band)
    stray = flat & away
    stray[0] = False  # the background
    if not stray.any():
        return np.ones(len(ys), bool)
    return ~stray[labels[ys - y0, xs - x0]]


def _disc(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _piece_height(ink: np.ndarray) -> float:
    """The median height of the pieces of ink (specks aside): about a letter's."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    tall = stats[1:, cv2.CC_STAT_HEIGHT]
    return float(np.median(tall[tall >= 4])) if (tall >= 4).any() else 20.0


def _rules(faint: np.ndarray, ink: np.ndarray, piece_height: float) -> tuple[np.ndarray, np.ndarray]:
    """Ruled lines and the boxes of a form, and upright runs of ink longer than a letter (masks).

    Rules are level straight segments far longer than any stroke of writing, found in the `faint` ink where a
    light rule is still whole (the page is deskewed). Upright runs are taken out of the grouping of ink even
    in plain writing, where they are letters' long strokes: one running down into the next line would
    otherwise join the two lines. They are looked for in the ink itself: on a noisy photo the faint ink is
    mostly grain, whose columns would pass for upright runs through every line."""
    h, w = faint.shape
    length = max(60, w // 6)
    rules = np.zeros_like(faint)
    segments = cv2.HoughLinesP(
        faint,
        rho=1,
        theta=np.pi / 360,
        threshold=max(20, length * 9 // 10),
        minLineLength=length,
        maxLineGap=1,
    )
    for x0, y0, x1, y1 in [] if segments is None else segments[:, 0]:
        if abs(y1 - y0) <= 0.05 * abs(x1 - x0):
            cv2.line(rules, (int(x0), int(y0)), (int(x1), int(y1)), 255, 5)
    upright = cv2.morphologyEx(
        cv2.dilate(ink, np.ones((1, 5), np.uint8)),
        cv2.MORPH_OPEN,
        np.ones((max(30, round(1.5 * piece_height)), 1), np.uint8),
    )
    return rules, cv2.dilate(upright & ink, np.ones((3, 3), np.uint8))


def _give_back(owner: np.ndarray, strokes: np.ndarray, height: float) -> None:
    """A long upright stroke (a piece of `strokes`) just beyond either end of a line joins it (`owner` is
    changed in place): without it a line that starts with an L, a T or a 1 is cut after that letter. The
    line is the one that owns most ink beside the stroke, in its rows, within `GIVE_BACK_REACH` typical ink
    heights. Strokes within a line's extent stay no line's (a long tail into the next line would stretch
    the line's box and cut into its neighbour), as do runs taller than the line's whole writing (the sides
    of a form's boxes reach above and below it)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strokes, connectivity=8)
    if n <= 1 or owner.max() < 0:
        return
    ys, xs = np.nonzero(owner >= 0)
    of = owner[ys, xs]
    lines = int(owner.max()) + 1
    first, last = np.full(lines, owner.shape[1]), np.full(lines, -1)
    np.minimum.at(first, of, xs)
    np.maximum.at(last, of, xs)
    top, bottom = np.full(lines, owner.shape[0]), np.full(lines, -1)
    np.minimum.at(top, of, ys)
    np.maximum.at(bottom, of, ys)
    reach = max(2, round(GIVE_BACK_REACH * height))
    for index in range(1, n):
        x, y, w, h = stats[index, :4]
        beside = owner[y : y + h, max(0, x - reach) : x + w + reach]
        counts = np.bincount(beside[beside >= 0].ravel())
        if not counts.size:
            continue
        line = int(np.argmax(counts))
        if h <= 1.2 * (bottom[line] - top[line] + 1) and (x < first[line] or x + w - 1 > last[line]):
            piece = labels[y : y + h, x : x + w] == index
            owner[y : y + h, x : x + w][piece] = line


def _skew(ink: np.ndarray, max_skew: float, step: float = 0.25) -> float:
    """The rotation (degrees) that makes the rows of ink sharpest: lines then lie flat."""
    if max_skew <= 0 or not ink.any():
        return 0.0
    small_scale = min(1.0, 800 / ink.shape[1])
    small = cv2.resize(ink, None, fx=small_scale, fy=small_scale, interpolation=cv2.INTER_AREA).astype(
        np.float32
    )
    h, w = small.shape
    best, best_score = 0.0, -1.0
    for angle in np.arange(-max_skew, max_skew + step / 2, step):
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), 1.0)
        rows = cv2.warpAffine(small, matrix, (w, h)).sum(axis=1)
        score = float(np.square(rows).sum())
        if score > best_score * (1 + 1e-6) or (
            abs(score - best_score) <= 1e-6 * best_score and abs(angle) < abs(best)
        ):
            best, best_score = float(angle), score
    return best


@dataclass(frozen=True)
class _Rotation:
    matrix: np.ndarray  # 2x3, input (working size) -> deskewed
    size: tuple[int, int]  # deskewed canvas (w, h)

    def back(self, box: Box, scale: float, image_size: tuple[int, int]) -> Box:
        """A deskewed working-size box as the axis-aligned box around it on the input image."""
        x0, y0, x1, y1 = box
        inverse = cv2.invertAffineTransform(self.matrix)
        corners = (
            np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ inverse.T / scale
        )
        lo, hi = corners.min(0), corners.max(0)
        w, h = image_size
        return (
            int(np.clip(math.floor(lo[0]), 0, w)),
            int(np.clip(math.floor(lo[1]), 0, h)),
            int(np.clip(math.ceil(hi[0]), 0, w)),
            int(np.clip(math.ceil(hi[1]), 0, h)),
        )


def _rotation(shape: tuple[int, int], angle: float) -> _Rotation:
    h, w = shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    out_w, out_h = int(math.ceil(w * cos + h * sin)), int(math.ceil(w * sin + h * cos))
    matrix[:, 2] += ((out_w - w) / 2, (out_h - h) / 2)
    return _Rotation(matrix, (out_w, out_h))


def _typical_height(heights: np.ndarray, areas: np.ndarray) -> float:
    """The ink-weighted median height of the pieces of ink: about a word's height, whatever the resolution."""
    order = np.argsort(heights)
    cumulative = np.cumsum(areas[order])
    return float(max(heights[order][np.searchsorted(cumulative, cumulative[-1] / 2)], 4))


def _line_spacing(ink: np.ndarray, min_lag: int, max_lag: float) -> float | None:
    """The distance between neighbouring lines: the first clear peak of the row profile's autocorrelation,
    or the strongest weaker one under `max_lag` when the first clear one is further (lines of uneven length
    repeat in a longer pattern). Cursive ink runs from line to line, so pieces of ink do not tell it; None
    for a single line."""
    profile = gaussian_filter1d(ink.sum(axis=1).astype(np.float64), 2.0)
    profile -= profile.mean()
    correlation = np.correlate(profile, profile, "full")[len(profile) - 1 :]
    if correlation[0] <= 0:
        return None
    correlation = correlation / correlation[0]
    peaks, _ = find_peaks(correlation, height=WEAK_PERIOD)
    peaks = peaks[peaks >= min_lag]
    strong = peaks[correlation[peaks] >= 0.25]
    if not len(strong):
        return None
    if strong[0] > max_lag:  # a period of several lines (short lines in a pattern): the line's own is weaker
        near = peaks[peaks <= max_lag]
        return float(near[np.argmax(correlation[near])]) if len(near) else float(strong[0])
    return float(strong[0])


def _assign(
    labels: np.ndarray, n: int, stats: np.ndarray, centroids: np.ndarray, spacing: float, height: float
):
    """Per pixel: the index of the line its ink belongs to (top to bottom), -1 for paper.

    Lines start as the peaks of the row profile, then each is fitted as a straight line through its pieces
    of ink (lines written on a tablet or a loose page slope each their own way), the pieces are handed out
    again, and a group of letters far from every line (a short last line) becomes a line of its own.
    """
    ink = labels > 0
    profile = ink.sum(axis=1).astype(np.float64)
    smooth = gaussian_filter1d(profile, max(1.0, 0.2 * spacing), mode="constant")
    peaks, props = find_peaks(smooth, distance=max(2, int(0.6 * spacing)), prominence=0)
    keep = (props["prominences"] >= 0.25 * smooth[peaks]) & (smooth[peaks] >= 0.04 * smooth.max())
    peaks = peaks[keep] if keep.any() else peaks[[int(np.argmax(smooth[peaks]))]]
    # where between two lines the emptiest row falls: marks above a line reach further than tails below
    split = 0.5
    if len(peaks) > 1:
        cuts = [a + int(np.argmin(smooth[a:b])) for a, b in zip(peaks[:-1], peaks[1:])]
        split = float(
            np.clip(
                np.median([(c - a) / (b - a) for c, a, b in zip(cuts, peaks[:-1], peaks[1:])]), 0.35, 0.65
            )
        )
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    cx, cy = centroids[:, 0], centroids[:, 1]
    real = np.arange(n) > 0
    real &= area > 0
    real[1:] &= np.isin(np.arange(1, n), np.unique(labels[ink]))
    tall = stats[:, cv2.CC_STAT_HEIGHT] > 1.3 * spacing  # cursive running into the next line: cut per pixel
    letter = stats[:, cv2.CC_STAT_HEIGHT] >= 0.4 * height  # not a tone mark, dot or comma
    # a mark between two lines is a tone mark of the line below unless it hangs close under the line above;
    # a long flat piece (a rule's remnant, a dash) is not a mark
    mark = ~letter & (stats[:, cv2.CC_STAT_WIDTH] < 1.5 * height)
    piece_split = np.where(mark, MARK_SPLIT, split)
    width = labels.shape[1]
    lines = [_Line(float(p), 0.0, 0.0, float(width)) for p in peaks]
    for attempt in range(6):
        line_of = _nearest(lines, cx, cy, piece_split)
        fitted = []
        for index in range(len(lines)):
            members = real & ~tall & (line_of == index)
            if members.any():
                fitted.append(_fit(cx[members], cy[members], area[members], stats[members], width))
        lines = _merged(sorted(fitted, key=lambda line: line.y(width / 2)), 0.4 * spacing)
        line_of = _nearest(lines, cx, cy, piece_split)
        residual = cy - np.array([lines[i].y(x) for i, x in zip(line_of, cx)])
        seeds = _two_lines_in_one(lines, line_of, residual, real & ~tall & letter, area, spacing, height)
        stray = real & ~tall & letter & (np.abs(residual) > 0.6 * spacing)
        if area[stray].sum() >= 0.8 * height**2:  # far-off letters (a short last line) seed a line
            ys = cy[stray]
            near = ys[np.abs(ys - np.median(ys)) < 0.5 * spacing]
            seeds.append(_Line(float(np.median(near if len(near) else ys)), 0.0, 0.0, float(width)))
        if not seeds or attempt == 5:
            break
        lines = sorted([*lines, *seeds], key=lambda line: line.y(width / 2))
    line_of = _nearest(lines, cx, cy, piece_split)
    owner = np.full(labels.shape, -1, np.int32)
    ys, xs = np.nonzero(ink)
    component = labels[ys, xs]
    pixel_line = _nearest(lines, xs.astype(np.float64), ys.astype(np.float64), split)
    counts = np.zeros((n, len(lines)), np.int64)
    np.add.at(counts, (component, pixel_line), 1)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    shared = tall | ((share >= SHARED_SHARE).sum(axis=1) >= 2) & (share.max(axis=1) < 0.8)
    owner[ys, xs] = np.where(shared[component], pixel_line, line_of[component])
    return owner


def _merged(lines: list, closer_than: float) -> list:
    """Lines whose centres run closer than `closer_than` where both have ink are one line (the longer)."""
    kept = []
    for line in sorted(lines, key=lambda ln: ln.x_lo - ln.x_hi):
        lo_hi = [(max(line.x_lo, k.x_lo), min(line.x_hi, k.x_hi)) for k in kept]
        if not any(
            lo < hi and abs(line.y((lo + hi) / 2) - k.y((lo + hi) / 2)) < closer_than
            for k, (lo, hi) in zip(kept, lo_hi)
        ):
            kept.append(line)
    return sorted(kept, key=lambda ln: ln.a)


def _two_lines_in_one(lines, line_of, residual, letters, area, spacing, height) -> list:
    """A line whose letters sit in two rows (two close lines the profile did not tell apart) becomes two:
    the row below is seeded as a line of its own."""
    seeds = []
    for index, line in enumerate(lines):
        members = letters & (line_of == index)
        if members.sum() < 4:
            continue
        r, w = residual[members], area[members]
        order = np.argsort(r)
        r, w = r[order], w[order]
        gaps = np.diff(r)
        at = int(np.argmax(gaps))
        lower = w[at + 1 :].sum()
        if gaps[at] >= 0.35 * spacing and min(w[: at + 1].sum(), lower) >= max(
            0.15 * w.sum(), 0.3 * height**2
        ):
            shift = float(np.average(r[at + 1 :], weights=w[at + 1 :]))
            seeds.append(_Line(line.a + shift, line.b, line.x_lo, line.x_hi))
    return seeds


@dataclass(frozen=True)
class _Line:
    """A line's centre y = a + b * x, and the columns its ink spans."""

    a: float
    b: float
    x_lo: float
    x_hi: float

    def y(self, x):
        return self.a + self.b * x


def _nearest(lines: list[_Line], x: np.ndarray, y: np.ndarray, split) -> np.ndarray:
    """The line each point belongs to: the one nearest in height, where a line reaches `1 - split` of the way
    up to the line above and `split` down to the line below, and reaching past its ends costs as much."""
    cost = np.empty((len(x), len(lines)))
    for k, line in enumerate(lines):
        dy = y - line.y(x)
        vertical = np.where(dy < 0, -dy / (1 - split), dy / split)
        beyond = np.maximum(0.0, np.maximum(line.x_lo - x, x - line.x_hi))
        cost[:, k] = vertical + 2.0 * beyond
    return cost.argmin(axis=1)


def _fit(x, y, w, stats, width: float) -> _Line:
    """A weighted straight line through the pieces of one line. Its slope counts only as far as its ink
    spans the page: a short line's own slope, drawn out across the page, would claim its neighbours' ink."""
    x_lo = float(stats[:, cv2.CC_STAT_LEFT].min())
    x_hi = float((stats[:, cv2.CC_STAT_LEFT] + stats[:, cv2.CC_STAT_WIDTH]).max())
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    slope = 0.0
    if len(x) >= 3 and np.ptp(x) > 0:
        slope = np.average((x - xm) * (y - ym), weights=w) / max(np.average((x - xm) ** 2, weights=w), 1e-9)
        slope = float(np.clip(slope, -0.12, 0.12)) * min(1.0, (x_hi - x_lo) / width)
    return _Line(float(ym - slope * xm), slope, x_lo, x_hi)


def box_iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match_boxes(found: list[Box], truth: list[Box], threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one pairs (found index, truth index) with IoU >= threshold, best pairs first."""
    pairs = sorted(
        ((box_iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True
    )
    used_found, used_truth, matched = set(), set(), []
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if i not in used_found and j not in used_truth:
            used_found.add(i)
            used_truth.add(j)
            matched.append((i, j))
    return matched
