"""Split a VNOnDB line's pen strokes into its syllables, guided by the recogniser.

Gaps alone do not split handwriting into syllables: letters inside a syllable are often as far apart as
syllables are. The shipped CTC model, force-aligned to the true label, says where each character lies
along the line. Between the last column of one syllable and the first of the next, the cut goes where the
line has least ink; each stroke then belongs to the syllable its ink mostly lies in. Tone marks and dots,
though drawn late, land above their letter in x and follow it.

A split is kept only when it is clear: the model reads the line almost as labelled, every syllable gets
ink, no stroke runs across a cut, and each cut falls in a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import editdistance
import numpy as np
import torch

from vihtr.data.sources.inkml import draw_strokes, ink_bounds
from vihtr.data.syllables.bank import detrended
from vihtr.models.decoding import BLANK, ctc_best_path
from vihtr.text.charset import Charset

ALIGN_HEIGHT = 48  # the line is drawn at the model's input height (the shipped default's)
MARGIN = 0.1  # paper above, below and beside the ink, as a fraction of the height
PEN = 0.03  # pen width, as a fraction of the height


@dataclass(frozen=True)
class SplitCheck:
    """When a split is clear enough to keep."""

    max_cer: float = 0.25  # the model's plain reading of the whole line against its label
    crossing: float = 0.08  # how far (x the line's ink band) a stroke may reach across a cut
    min_gap: float = 0.03  # the least width (x band) of ink-free columns at a cut
    mark: float = 0.35  # a stroke smaller than this (x band) each way is a mark: a tone, a hat, a dot


@dataclass
class LineSplit:
    """A line's syllables: `tokens[i]` is drawn by the strokes `stroke_syllable == i`; `kept[i]` when the
    model reads exactly `tokens[i]` between its two cuts and both cuts are clean."""

    tokens: list[str]
    stroke_syllable: np.ndarray  # int (S,): the syllable each stroke belongs to
    cuts: np.ndarray  # float (len(tokens) - 1,): tablet x of each cut
    band: float  # the line's ink band height, tablet units (1st-99th percentile of y, slope taken out)
    reading: str  # the model's plain reading of the whole line
    kept: np.ndarray  # bool (len(tokens),)
    why: str = ""  # why no syllable of the line was kept

    @property
    def syllables(self) -> int:
        return int(self.kept.sum())


def plain_drawing(points: np.ndarray, stroke_ends: np.ndarray, height: int = ALIGN_HEIGHT, rows=None):
    """The strokes drawn with no random choices, dark on white: -> (uint8 ink mask, tablet-to-pixel
    scale, tablet x of pixel column 0). `rows`: the (top, bottom) tablet y to fit to the height (a
    syllable drawn as its line is); default, the strokes' own ink band."""
    low, high = ink_bounds(points)
    if rows is not None:
        low, high = np.array([low[0], rows[0]]), np.array([high[0], rows[1]])
    extent = np.maximum(high - low, 1e-6)
    margin = MARGIN * height
    scale = (height - 2 * margin) / extent[1]
    pts = (points - low) * scale + margin
    width = max(1, int(np.ceil(extent[0] * scale + 2 * margin)))
    mask = np.zeros((height, width), np.uint8)
    draw_strokes(mask, pts, stroke_ends, max(1, round(PEN * height)))
    return mask, float(scale), float(low[0] - margin / scale)


def ctc_viterbi(log_probs: np.ndarray, targets: list[int], blank: int = 0) -> np.ndarray | None:
    """The most likely CTC path that spells `targets`: for each column, the index of the target it emits,
    or -1 for a blank. None when the line has too few columns for the label."""
    T = log_probs.shape[0]
    states = [blank]
    for t in targets:
        states += [t, blank]
    S = len(states)
    if T < len(targets) + sum(a == b for a, b in zip(targets, targets[1:])):
        return None
    emit = log_probs[:, states]  # T x S
    score = np.full((T, S), -np.inf)
    back = np.zeros((T, S), np.int64)
    score[0, 0], score[0, 1] = emit[0, 0], emit[0, 1]
    # a target state may be entered from two states back, unless it repeats the target before it
    skip = np.zeros(S, bool)
    for s in range(3, S, 2):
        skip[s] = states[s] != states[s - 2]
    for t in range(1, T):
        prev = score[t - 1]
        stay, step = prev, np.concatenate([[-np.inf], prev[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], prev[:-2]]), -np.inf)
        choices = np.stack([stay, step, jump])
        best = choices.argmax(0)
        score[t] = choices[best, np.arange(S)] + emit[t]
        back[t] = np.arange(S) - best
    end = S - 1 if score[-1, S - 1] >= score[-1, S - 2] else S - 2
    if not np.isfinite(score[-1, end]):
        return None
    path = np.empty(T, np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = end
        end = back[t, end]
    return np.where(path % 2 == 1, (path - 1) // 2, -1)


def token_spans(text: str) -> list[tuple[str, int, int]]:
    """The space-separated tokens of `text` with their [start, end) character positions."""
    spans, start = [], 0
    for token in text.split(" "):
        spans.append((token, start, start + len(token)))
        start += len(token) + 1
    return spans


class SyllableSplitter:
    """Force-aligns labels with a released CTC model (`Release.load()`'s model and preprocess)."""

    def __init__(self, model, preprocess, check: SplitCheck | None = None) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.charset: Charset = model.charset
        self.check = check or SplitCheck()

    @torch.no_grad()
    def _read_alone(self, masks: list[np.ndarray]) -> list[str]:
        """Plain readings of drawings, in one batch."""
        from PIL import Image

        from vihtr.data.preprocess import pad_batch

        tensors = [self.preprocess(Image.fromarray(255 - m)) for m in masks]
        images, widths = pad_batch(tensors)
        memory, memory_mask = self.model.encode(images, widths)
        read = ctc_best_path(self.model.ctc_head(memory), memory_mask)
        return [self.charset.decode(ids) for ids in read.token_ids]

    @torch.no_grad()
    def _log_probs(self, mask: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-column CTC log-probabilities of the drawn line, and the pixels of the drawing per column."""
        from PIL import Image

        image = Image.fromarray(255 - mask)
        tensor = self.preprocess(image)[None]
        drawn = min(self.preprocess.natural_width(mask.shape[1], mask.shape[0]), tensor.shape[-1])
        memory, memory_mask = self.model.encode(tensor, torch.tensor([drawn]))
        logits = self.model.ctc_head(memory)[0]
        columns = int((~memory_mask[0]).sum())
        # the input's first `drawn` pixels are the drawing, squeezed or stretched from its own width
        return logits[:columns].log_softmax(-1).numpy(), mask.shape[1] / columns

    def _read_columns(self, log_probs: np.ndarray) -> str:
        """The plain reading (CTC best path) of a stretch of a line's columns."""
        no_padding = torch.zeros(1, len(log_probs), dtype=torch.bool)
        return self.charset.decode(ctc_best_path(torch.from_numpy(log_probs)[None], no_padding).token_ids[0])

    def split(self, points: np.ndarray, stroke_ends: np.ndarray, text: str) -> LineSplit:
        mask, scale, x0 = plain_drawing(points, stroke_ends)
        spans = token_spans(text)
        tokens = [t for t, _, _ in spans]
        band = float(np.subtract(*np.percentile(detrended(points)[1], [99, 1])))
        log_probs, px_per_column = self._log_probs(mask)
        reading = self._read_columns(log_probs)
        none = np.zeros(len(tokens), bool)
        split = LineSplit(tokens, np.zeros(len(stroke_ends), np.int64), np.zeros(0), band, reading, none)
        if editdistance.eval(reading, text) > self.check.max_cer * max(len(text), 1):
            split.why = "misread"
            return split
        path = ctc_viterbi(log_probs, self.charset.encode(text, add_special=False), BLANK)
        if path is None or len({int(c) for c in path if c >= 0}) != len(text):
            split.why = "unaligned"
            return split
        # each character's columns, in drawing pixels
        columns = [np.flatnonzero(path == c) for c in range(len(text))]
        first = [c[0] * px_per_column for c in columns]
        last = [(c[-1] + 1) * px_per_column for c in columns]
        cuts_px, clean = self._cuts(mask, spans, first, last, scale * band)
        cuts = x0 + cuts_px / scale
        owner = self._assign(points, stroke_ends, cuts, band, clean)
        kept = np.zeros(len(tokens), bool)
        bounds = [0, *(c / px_per_column for c in cuts_px), len(log_probs)]
        for i, token in enumerate(tokens):
            if (i > 0 and not clean[i - 1]) or (i < len(cuts) and not clean[i]) or not (owner == i).any():
                continue
            # the model's own reading between the two cuts
            between = self._read_columns(log_probs[round(bounds[i]) : round(bounds[i + 1])])
            kept[i] = between.strip() == token  # the spaces either side may fall inside
        self._read_each_alone(points, stroke_ends, owner, band, tokens, kept)
        split.stroke_syllable, split.cuts, split.kept = owner, cuts, kept
        split.why = "" if kept.any() else "no clean syllable"
        return split

    def _cuts(self, mask, spans, first, last, band_px) -> tuple[np.ndarray, list[bool]]:
        """Where the line is cut between neighbouring syllables (pixels), and which cuts are clean."""
        ink = mask.astype(np.float32).sum(0)
        cuts, clean = [], []
        for (_, _, end), (_, start, _) in zip(spans, spans[1:]):
            # CTC's columns sit near, not exactly on, their letters: look from the last letter of one syllable
            # to the first of the next, and cut in the ink-free run nearest the space's own columns
            lo = int(first[end - 1])
            hi = min(len(ink), max(lo + 1, int(last[start])))
            cut, width = _quietest(ink[lo:hi], (first[end] + last[end]) / 2 - lo)
            cuts.append(lo + cut)
            # wide enough, and the letters either side stay on their own side (a comma cut off its word is not)
            before, after = (first[end - 1] + last[end - 1]) / 2, (first[start] + last[start]) / 2
            clean.append(width / band_px >= self.check.min_gap and before < lo + cut < after)
        return np.array(cuts), clean

    def _assign(self, points, stroke_ends, cuts, band, clean) -> np.ndarray:
        """Each stroke's syllable: where most of its points lie. Marks the cuts a stroke reaches across, or
        a mark may have been misplaced at, unclean."""
        ends = np.asarray(stroke_ends)
        starts = np.concatenate([[0], ends[:-1]])
        owner = np.empty(len(ends), np.int64)
        reach = self.check.crossing * band
        base = None  # the syllable of the last stroke written that was not a mark
        for s, (a, b) in enumerate(zip(starts, ends)):
            xs = points[a:b, 0]
            i = owner[s] = np.bincount(np.searchsorted(cuts, xs), minlength=len(cuts) + 1).argmax()
            if i > 0 and xs.min() < cuts[i - 1] - reach:
                clean[i - 1] = False
            if i < len(cuts) and xs.max() > cuts[i] + reach:
                clean[i] = False
            # a mark (a tone, a hat, a dot) is written after its letters: one that lands in the syllable next
            # to the letters written just before it may belong to either
            if np.ptp(points[a:b], axis=0).max() >= self.check.mark * band:
                base = i
            elif base is not None and abs(i - base) == 1:
                clean[min(i, base)] = False
        return owner

    def _read_each_alone(self, points, stroke_ends, owner, band, tokens, kept) -> None:
        """Keeps a syllable only if, drawn alone as it sits in its line, it still reads as itself: a stray
        stroke of a neighbour (the tail of a g) or a lost mark changes the reading."""
        candidates = np.flatnonzero(kept)
        if not len(candidates):
            return
        ends = np.asarray(stroke_ends)
        starts = np.concatenate([[0], ends[:-1]])
        rows = np.percentile(points[:, 1], [1, 99]) + np.array([-0.35, 0.35]) * band
        drawings = []
        for i in candidates:
            strokes = [points[a:b] for k, (a, b) in enumerate(zip(starts, ends)) if owner[k] == i]
            drawings.append(
                plain_drawing(np.concatenate(strokes), np.cumsum([len(x) for x in strokes]), rows=rows)[0]
            )
        for i, alone in zip(candidates, self._read_alone(drawings)):
            kept[i] = alone == tokens[i]


def _quietest(ink: np.ndarray, centre: float) -> tuple[float, int]:
    """Where to cut a stretch of column ink sums: the middle of the ink-free run nearest `centre`, and that
    run's width; without any ink-free column, the least-ink column nearest `centre`, width 0."""
    empty = np.flatnonzero(ink == 0)
    if not len(empty):
        least = np.flatnonzero(ink == ink.min())
        return float(least[np.abs(least - centre).argmin()]), 0
    runs = np.split(empty, np.flatnonzero(np.diff(empty) > 1) + 1)
    run = min(runs, key=lambda r: max(0.0, r[0] - centre, centre - r[-1]))
    return (run[0] + run[-1]) / 2, len(run)
