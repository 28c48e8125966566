"""A bank of real handwritten syllables: each one's pen strokes, its writer, and how that writer spaces them.

Built once from the VNOnDB training folds (`scripts/build_syllables.py`, or `build_bank`): every line is
split by `vihtr.inference.syllable_split.SyllableSplitter`, and the syllables it splits cleanly are kept. A
syllable's points are stored in units of its line's ink band (the 1st-99th percentile of y, the line's slope
taken out): x from the syllable's own left edge, y from the line's middle. So one writer's syllables line up
again when laid side by side, and every writer's fit the same line height. Each writer also keeps the gaps between its
syllables, in the same unit.

Stored as one xz-compressed npz in the data cache (`$VIHTR_CACHE_DIR/syllables/`)."""

from __future__ import annotations

import logging
import lzma
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vihtr.paths import cache_dir

log = logging.getLogger(__name__)

BANK_NAME = "vnondb_syllables_fold{fold}.npz.xz"


@dataclass(frozen=True)
class Syllable:
    text: str
    writer: str
    points: np.ndarray  # float32 (N, 2), in units of the line's ink band: x from its left edge, y from the
    # line's middle (its ink band's, the line's slope taken out)
    stroke_ends: np.ndarray  # int (S,)

    @property
    def width(self) -> float:
        return float(self.points[:, 0].max())


@dataclass
class SyllableBank:
    """Syllables by writer and text, and each writer's gaps between syllables (in ink-band units)."""

    syllables: list[Syllable]
    gaps: dict[str, np.ndarray]  # writer -> float32 gaps between neighbouring syllables of its lines
    by_text: dict[str, list[int]] = field(init=False, repr=False)
    by_writer_text: dict[tuple[str, str], list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_text, self.by_writer_text = defaultdict(list), defaultdict(list)
        for i, s in enumerate(self.syllables):
            self.by_text[s.text].append(i)
            self.by_writer_text[(s.writer, s.text)].append(i)
        self.writers = sorted(self.gaps)
        # a writer's size: its syllables' width per character, the measure a borrowed syllable is matched by
        per_char = defaultdict(list)
        for s in self.syllables:
            per_char[s.writer].append(s.width / max(len(s.text), 1))
        self.width_per_char = {w: float(np.median(v)) for w, v in per_char.items()}

    def __len__(self) -> int:
        return len(self.syllables)

    def __contains__(self, text: str) -> bool:
        return text in self.by_text

    def pick(self, text: str, writer: str, rng: random.Random) -> Syllable:
        """One of `writer`'s renderings of `text`; when it never wrote it, one by the writer whose hand is
        nearest in width per character among those who did."""
        own = self.by_writer_text.get((writer, text))
        if own:
            return self.syllables[rng.choice(own)]
        candidates = self.by_text[text]
        size = self.width_per_char.get(writer, 0.0)
        nearest = min(abs(self.width_per_char[self.syllables[i].writer] - size) for i in candidates)
        close = [
            i for i in candidates if abs(self.width_per_char[self.syllables[i].writer] - size) <= nearest
        ]
        return self.syllables[rng.choice(close)]

    def writer_for(self, tokens: list[str], rng: random.Random) -> str:
        """A writer to write `tokens`, likelier the more of them it wrote itself (weight: the count cubed):
        its own hand throughout where the bank allows, without every line of a text going to one writer."""
        counts = {w: 0 for w in self.writers}
        for token in set(tokens):
            for w in {self.syllables[i].writer for i in self.by_text.get(token, ())}:
                counts[w] += 1
        return rng.choices(self.writers, [(counts[w] + 0.1) ** 3 for w in self.writers])[0]

    # ---- storage ----
    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        writers = sorted(self.gaps)
        with lzma.open(tmp, "wb") as f:
            np.savez(
                f,
                texts=np.array([s.text for s in self.syllables]),
                writers=np.array([s.writer for s in self.syllables]),
                counts=np.array([len(s.points) for s in self.syllables], np.int64),
                points=np.concatenate([s.points for s in self.syllables]).astype(np.float16),
                stroke_counts=np.array([len(s.stroke_ends) for s in self.syllables], np.int64),
                stroke_ends=np.concatenate([s.stroke_ends for s in self.syllables]).astype(np.int32),
                gap_writers=np.array(writers),
                gap_counts=np.array([len(self.gaps[w]) for w in writers], np.int64),
                gaps=np.concatenate([self.gaps[w] for w in writers]).astype(np.float16),
            )
        tmp.replace(path)  # a bank is whole or absent: a stopped build leaves no half file behind

    @classmethod
    def load(cls, path: str | os.PathLike) -> SyllableBank:
        with lzma.open(path, "rb") as f, np.load(f) as data:
            d = {k: data[k] for k in data.files}
        points = np.split(d["points"].astype(np.float32), np.cumsum(d["counts"])[:-1])
        ends = np.split(d["stroke_ends"].astype(np.int64), np.cumsum(d["stroke_counts"])[:-1])
        syllables = [
            Syllable(str(t), str(w), p, e) for t, w, p, e in zip(d["texts"], d["writers"], points, ends)
        ]
        gaps = np.split(d["gaps"].astype(np.float32), np.cumsum(d["gap_counts"])[:-1])
        return cls(syllables, {str(w): g for w, g in zip(d["gap_writers"], gaps)})


def detrended(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Lines drift up or down as they are written: the line's slope (least squares of y on x), and each
    point's y with the slope taken out."""
    slope = float(np.polyfit(points[:, 0], points[:, 1], 1)[0]) if np.ptp(points[:, 0]) > 0 else 0.0
    return slope, points[:, 1] - slope * points[:, 0]


def default_bank_path(fold: int = 0) -> Path:
    return cache_dir("syllables") / BANK_NAME.format(fold=fold)


def syllables_of(points: np.ndarray, stroke_ends: np.ndarray, split, writer: str) -> list[Syllable]:
    """The kept syllables of one split line, in band units."""
    ends = np.asarray(stroke_ends)
    starts = np.concatenate([[0], ends[:-1]])
    slope, level = detrended(points)  # a syllable's y is taken from the line's middle where the syllable is
    middle = float(np.mean(np.percentile(level, [1, 99])))
    out = []
    for i, token in enumerate(split.tokens):
        if not split.kept[i]:
            continue
        strokes = [points[a:b] for s, (a, b) in enumerate(zip(starts, ends)) if split.stroke_syllable[s] == i]
        pts = np.concatenate(strokes)
        pts = (pts - [pts[:, 0].min(), middle + slope * pts[:, 0].mean()]) / split.band
        out.append(Syllable(token, writer, pts.astype(np.float32), np.cumsum([len(s) for s in strokes])))
    return out


def line_gaps(points: np.ndarray, stroke_ends: np.ndarray, split) -> list[float]:
    """The blank widths between neighbouring syllables of a split line whose cuts are both clean, in band
    units (the writer's spacing)."""
    ends = np.asarray(stroke_ends)
    starts = np.concatenate([[0], ends[:-1]])
    extent = {}
    for s, (a, b) in enumerate(zip(starts, ends)):
        i = int(split.stroke_syllable[s])
        lo, hi = float(points[a:b, 0].min()), float(points[a:b, 0].max())
        old = extent.get(i, (lo, hi))
        extent[i] = (min(old[0], lo), max(old[1], hi))
    return [
        (extent[i + 1][0] - extent[i][1]) / split.band
        for i in range(len(split.tokens) - 1)
        if split.kept[i] and split.kept[i + 1] and i in extent and i + 1 in extent
    ]


def build_bank(source, splitter, limit: int | None = None) -> tuple[SyllableBank, dict]:
    """Split every line of an `InkMLSource` (its training folds) and keep what splits cleanly.
    -> (the bank, a report: lines, lines kept, syllables, syllables kept, why lines were dropped, seconds)."""
    start = time.time()
    syllables, gaps = [], defaultdict(list)
    why: dict[str, int] = defaultdict(int)
    tokens = kept_lines = 0
    count = len(source) if limit is None else min(limit, len(source))
    for index in range(count):
        line, text = source.lines[index], source.texts[index]
        split = splitter.split(line.points, line.stroke_ends, text)
        tokens += len(split.tokens)
        if split.why:
            why[split.why] += 1
            continue
        kept_lines += 1
        syllables += syllables_of(line.points, line.stroke_ends, split, line.writer)
        gaps[line.writer] += line_gaps(line.points, line.stroke_ends, split)
        if (index + 1) % 500 == 0:
            log.info("split %d of %d lines: %d syllables kept", index + 1, count, len(syllables))
    writers = {s.writer for s in syllables}
    bank = SyllableBank(syllables, {w: np.asarray(gaps.get(w, []) or [0.5], np.float32) for w in writers})
    report = {
        "lines": count,
        "lines_kept": kept_lines,
        "syllables": tokens,
        "syllables_kept": len(syllables),
        "distinct_syllables": len(bank.by_text),
        "writers": len(writers),
        "dropped": dict(why),
        "seconds": round(time.time() - start, 1),
    }
    return bank, report
