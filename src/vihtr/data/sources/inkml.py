"""Online handwriting (HANDS-VNOnDB InkML pen strokes) rendered to line images on the fly.

Each `<traceGroup>` of an InkML file is one text line: its `<Tg_Truth>` is the label, its `<trace>`
elements the strokes (`x y, x y, ...` in tablet units); the file header's `<Writer_ID>` is the group
key for writer folds. A line's key is `<inkml file name>#<traceGroup index>`.

`InkMLSource.get(index, rng)` draws the strokes with a random pen width, ink colour, slant, aspect,
point jitter and paper, every choice taken from `rng`: a fixed rng gives the same image (validation),
a fresh one a new rendering (each training epoch). Lines are drawn directly at the model's height.
"""

from __future__ import annotations

import functools
import logging
import lzma
import math
import os
import random
import shutil
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vihtr.data.folds import DEFAULT_SEED
from vihtr.data.sources.base import Sample
from vihtr.data.sources.real import select_lines
from vihtr.paths import cache_dir
from vihtr.text.charset import Charset
from vihtr.text.normalize import normalize_text

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = cache_dir("vnondb")
_SUBPIXEL_BITS = 4  # cv2 drawing takes fixed-point coordinates: 1/16 pixel precision


@dataclass(frozen=True)
class InkLine:  # frozen: parsed lines are cached and shared between sources
    key: str  # "<file name>#<traceGroup index>"
    text: str  # as written in the file (entities decoded), not yet normalised
    writer: str
    points: np.ndarray  # float32 (N, 2): all strokes' points, one after another
    stroke_ends: np.ndarray  # int (S,): exclusive end of each stroke in `points`
    screen: int = -1  # the tablet screen it was written on (traceGroup id `tg_<screen>_<line>`); -1 unknown


def _parse_trace(text: str | None) -> np.ndarray:
    """`x y, x y, ...` (extra channels such as time or pressure are ignored) -> float32 (n, 2)."""
    points = [p.split() for p in (text or "").split(",")]
    points = [p[:2] for p in points if len(p) >= 2]
    return np.asarray(points, dtype=np.float32).reshape(-1, 2)


def parse_inkml(path: str | os.PathLike) -> list[InkLine]:
    """The lines of one InkML file, in document order; traceGroups without any point are left out."""
    root = ET.parse(path).getroot()
    for element in root.iter():  # drop any XML namespace so tags match by local name
        element.tag = element.tag.rpartition("}")[2]
    writer = (root.findtext("annotationXML/Writer_ID") or "").strip() or Path(path).stem
    lines = []
    for index, group in enumerate(root.iter("traceGroup")):
        strokes = [s for s in (_parse_trace(t.text) for t in group.iter("trace")) if len(s)]
        if not strokes:
            log.warning("%s: traceGroup %d has no points, left out", path, index)
            continue
        lines.append(
            InkLine(
                key=f"{Path(path).name}#{index}",
                text=group.findtext("annotationXML/Tg_Truth") or "",
                writer=writer,
                points=np.concatenate(strokes),
                stroke_ends=np.cumsum([len(s) for s in strokes]),
                screen=_screen_of(group.get("id")),
            )
        )
    return lines


def _screen_of(group_id: str | None) -> int:
    """`tg_<screen>_<line>` -> screen; lines of one screen keep their tablet positions (a page)."""
    parts = (group_id or "").split("_")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "tg" and parts[1].isdigit() else -1


@functools.cache
def _parse_once(path: str, mtime_ns: int) -> tuple[InkLine, ...]:
    """Train and validation sources of one run parse each file once and share the strokes."""
    return tuple(parse_inkml(path))


def extract_archive(archive: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """Extract a .tar(.xz/.gz) once into `cache_dir` (atomically: concurrent runs never see half a tree)."""
    archive, cache_dir = Path(archive), Path(cache_dir)
    stat = archive.stat()
    target = cache_dir / archive.name.split(".")[0]
    marker = cache_dir / f".{archive.name}.extracted"
    stamp = f"{stat.st_size} {int(stat.st_mtime)}"
    if target.is_dir() and marker.is_file() and marker.read_text() == stamp:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("extracting %s into %s (once)", archive, cache_dir)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".extract-"))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        entries = list(tmp.iterdir())
        # an archive with one top folder (InkData_line/) becomes that folder; otherwise the whole tree
        (entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp).rename(target)
        marker.write_text(stamp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


PACKED_SUFFIX = ".npz.xz"


def save_packed(lines: list[InkLine], path: str | os.PathLike, unit: int = 1) -> None:
    """Write parsed lines as one xz-compressed `.npz.xz`: points rounded to `unit` tablet units, stored as
    int16 steps between points.

    What a training machine that receives its data over a small link (a lent GPU) is sent instead of the
    InkML archive. `unit` 1 is lossless for VNOnDB (its coordinates are whole tablet units); `unit` 4 is
    a third of the archive's size and moves a point by at most 2 units, under a tenth of a pixel at 48 px
    (a VNOnDB line's ink band is about 1,400 units high).
    """
    if not str(path).endswith(PACKED_SUFFIX):
        raise ValueError(f"{path}: packed strokes are named *{PACKED_SUFFIX}")
    points = [np.round(line.points / unit).astype(np.int64) for line in lines]
    steps = np.concatenate([np.diff(p, axis=0) for p in points])
    if np.abs(steps).max() > np.iinfo(np.int16).max:
        raise ValueError(f"a step between two points does not fit int16 at unit {unit}")
    with lzma.open(path, "wb") as f:
        np.savez(
            f,
            unit=np.array(unit),
            starts=np.array([p[0] for p in points], np.int64),
            steps=np.ascontiguousarray(steps.T.astype(np.int16)),  # all x steps, then all y: packs tighter
            counts=np.array([len(p) for p in points], np.int64),
            stroke_ends=np.concatenate([line.stroke_ends for line in lines]).astype(np.int64),
            stroke_counts=np.array([len(line.stroke_ends) for line in lines], np.int64),
            keys=np.array([line.key for line in lines]),
            texts=np.array([line.text for line in lines]),
            writers=np.array([line.writer for line in lines]),
        )


def load_packed(path: str | os.PathLike) -> list[InkLine]:
    """The lines `save_packed` wrote, as `parse_inkml` gives them (points in tablet units)."""
    with lzma.open(path, "rb") as f, np.load(f) as data:
        packed = {k: data[k] for k in data.files}
    unit, counts = int(packed["unit"]), packed["counts"]
    steps = np.split(packed["steps"].T, np.cumsum(counts - 1)[:-1])
    stroke_ends = np.split(packed["stroke_ends"], np.cumsum(packed["stroke_counts"])[:-1])
    lines = []
    for i, start in enumerate(packed["starts"]):
        points = np.concatenate([start[None], steps[i]]).cumsum(axis=0) * unit
        key, text, writer = (str(packed[f][i]) for f in ("keys", "texts", "writers"))
        lines.append(InkLine(key, text, writer, points.astype(np.float32), stroke_ends[i]))
    return lines


def inkml_lines(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> list[InkLine]:
    """Every line of a folder or tar archive of .inkml files, or of the `.npz.xz` `save_packed` wrote."""
    if str(path).endswith(PACKED_SUFFIX):
        return load_packed(path)
    return [line for f in inkml_files(path, cache_dir) for line in _parse_once(str(f), f.stat().st_mtime_ns)]


def inkml_files(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every .inkml file under a folder, or inside a tar archive (extracted once to `cache_dir`)."""
    path = Path(path)
    folder = path if path.is_dir() else extract_archive(path, cache_dir or DEFAULT_CACHE_DIR)
    files = sorted(folder.rglob("*.inkml"))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: InkML file names must be unique (they are the line keys)")
    return files


def copied_texts(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """InkML file name -> the source text its writer copied (the header's `<Gt_File_Name>`; the file's stem
    when absent). Several writers copied the same text: a text-novel split keeps a text on one side."""
    texts = {}
    for f in inkml_files(path, cache_dir):
        root = ET.parse(f).getroot()
        for element in root.iter():
            element.tag = element.tag.rpartition("}")[2]
        texts[f.name] = (root.findtext("annotationXML/Gt_File_Name") or "").strip() or f.stem
    return texts


@dataclass(frozen=True)
class RenderStyle:
    """Ranges the renderer draws from; lengths are fractions of the output height."""

    pen_width: tuple[float, float] = (0.015, 0.045)
    slant: float = 0.3  # shear dx/dy, drawn in [-slant, slant]
    aspect: tuple[float, float] = (0.85, 1.3)  # horizontal stretch
    margin: tuple[float, float] = (0.03, 0.15)  # paper above, below and beside the ink
    jitter: float = 0.2  # std of point noise, in pen widths
    ink_opacity: tuple[float, float] = (0.75, 1.0)
    paper: tuple[int, int] = (205, 255)  # paper grey level
    noise: tuple[float, float] = (0.0, 8.0)  # std of pixel noise, grey levels

    @classmethod
    def from_any(cls, style: RenderStyle | Mapping | None) -> RenderStyle:
        if style is None:
            return cls()
        if isinstance(style, RenderStyle):
            return style
        # config lists (ListConfig) become tuples; numbers stay as they are
        return cls(**{k: v if isinstance(v, (int, float)) else tuple(v) for k, v in style.items()})


# ink colours (RGB): black, blue-black, ballpoint blue, dark blue, purple-blue
INKS = ((25, 25, 30), (30, 35, 70), (25, 45, 150), (20, 30, 110), (55, 40, 120))


def ink_bounds(pts: np.ndarray, spread: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box of the line's ink, ignoring stray points far above or below it.

    A stray tap far from the line would otherwise shrink the whole line to a sliver. The band between
    the 1st and 99th percentile of y, widened by `spread` of its height on each side, keeps tall letters
    and tone marks (all real lines fit within 1.7 times that band); points outside are left off the canvas.
    """
    y_lo, y_hi = np.percentile(pts[:, 1], [1, 99])
    band = max(y_hi - y_lo, 1e-6)
    inside = (pts[:, 1] >= y_lo - spread * band) & (pts[:, 1] <= y_hi + spread * band)
    kept = pts[inside] if inside.any() else pts
    return kept.min(0), kept.max(0)


def render_strokes(
    points: np.ndarray, stroke_ends: np.ndarray, height: int, rng: random.Random, style: RenderStyle
) -> Image.Image:
    """Draw one line's strokes as dark ink on paper, `height` pixels high; every random choice from `rng`."""
    np_rng = np.random.default_rng(rng.getrandbits(64))
    pts = points.astype(np.float64)
    # slant about the vertical centre, then stretch; both before scaling so the scale sees the final extent
    y_mid = (pts[:, 1].min() + pts[:, 1].max()) / 2
    pts[:, 0] += rng.uniform(-style.slant, style.slant) * (y_mid - pts[:, 1])
    pts[:, 0] *= rng.uniform(*style.aspect)
    top, bottom = (rng.uniform(*style.margin) * height for _ in range(2))
    side = rng.uniform(*style.margin) * height
    low, high = ink_bounds(pts)
    extent = np.maximum(high - low, 1e-6)
    scale = max(height - top - bottom, 1.0) / extent[1]
    pts = (pts - low) * scale
    pen = max(1.0, rng.uniform(*style.pen_width) * height)
    pts += np_rng.normal(0.0, style.jitter * pen, pts.shape)
    pts += (side, top)
    width = max(1, math.ceil(extent[0] * scale + 2 * side))

    mask = np.zeros((height, width), np.uint8)
    draw_strokes(mask, pts, stroke_ends, max(1, round(pen)))
    return ink_on_paper(mask, rng, np_rng, style)


def draw_strokes(mask: np.ndarray, pts: np.ndarray, stroke_ends: np.ndarray, thickness: int) -> None:
    """Draw strokes (points in pixels, sub-pixel precise) into a uint8 mask, anti-aliased, at 255."""
    fixed = np.round(pts * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    for stroke in np.split(fixed, stroke_ends[:-1]):
        if len(stroke) == 1:  # a tap: a dot of a diacritic or an i
            cv2.circle(
                mask,
                tuple(int(v) for v in stroke[0]),
                max(1, thickness // 2) << _SUBPIXEL_BITS,
                255,
                -1,
                cv2.LINE_AA,
                _SUBPIXEL_BITS,
            )
        else:
            cv2.polylines(mask, [stroke], False, 255, thickness, cv2.LINE_AA, _SUBPIXEL_BITS)


def ink_on_paper(
    mask: np.ndarray, rng: random.Random, np_rng: np.random.Generator, style: RenderStyle
) -> Image.Image:
    """An ink mask (uint8, 255 = full ink) drawn in one pen colour on paper with uneven light and noise."""
    height, width = mask.shape
    # float32 throughout: this composite is most of the rendering time
    tint = np.array(
        [rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(-12, 4)], np.float32
    )  # warm/cool paper
    ramp = np.linspace(0, rng.uniform(-15, 15), width, dtype=np.float32)  # uneven lighting across the line
    paper = (rng.uniform(*style.paper) + tint)[None, None, :] + ramp[None, :, None]
    ink = (np.array(rng.choice(INKS)) + np_rng.normal(0, 10, 3)).astype(np.float32)
    alpha = mask.astype(np.float32)[..., None] * np.float32(rng.uniform(*style.ink_opacity) / 255.0)
    noise = np_rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(
        rng.uniform(*style.noise)
    )
    image = paper + alpha * (ink - paper) + noise
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


class InkMLSource:
    """VNOnDB-style InkML lines, rendered at `height` pixels.

    `path` is a folder of .inkml files, a tar archive of them (extracted once into `cache_dir`), or a
    `.npz.xz` of their strokes (`save_packed`).
    `fold`/`split`/`folds_csv` select one side of a writer-grouped fold split, keyed by line key.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        name: str = "vnondb",
        cache_dir: str | os.PathLike | None = None,
        tone_style: str = "keep",
        charset: Charset | str | None = None,
        fold: int | str | None = None,
        split: str = "train",
        folds_csv: str | os.PathLike | None = None,
        fold_seed: int = DEFAULT_SEED,
        height: int = 64,
        style: RenderStyle | Mapping | None = None,
    ) -> None:
        self.name = name
        self.height = height
        self.style = RenderStyle.from_any(style)
        lines = inkml_lines(path, cache_dir)
        keys = [line.key for line in lines]
        groups = [line.writer for line in lines]
        texts = [normalize_text(line.text, tone_style) for line in lines]
        self.listing = list(
            zip(keys, texts, groups)
        )  # every line before any selection: what folds are made of
        chosen, self.unknown_report = select_lines(
            name, keys, texts, groups, charset, fold, split, folds_csv, fold_seed
        )
        self.lines = [lines[i] for i in chosen]
        self.keys = [keys[i] for i in chosen]
        self.texts = [texts[i] for i in chosen]
        self.groups = [groups[i] for i in chosen]

    def __len__(self) -> int:
        return len(self.lines)

    def get(self, index: int, rng: random.Random) -> Sample:
        line = self.lines[index]
        image = render_strokes(line.points, line.stroke_ends, self.height, rng, self.style)
        return Sample(image=image, text=self.texts[index], source=self.name, group=line.writer)
