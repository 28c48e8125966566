"""Real scanned lines: a folder of line images with a `labels.tsv` (`relative_path<TAB>text`).

Labels are normalised to the dataset's tone style. A label with characters outside the charset is
reported (`UnknownCharReport`, logged once) and its line left out; it is never altered to fit. Missing
images are counted and left out at construction; an image that turns out corrupt when read is counted
and replaced by the next readable line, so a bad file never kills a DataLoader worker.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from vihtr.data.folds import DEFAULT_SEED, select_fold
from vihtr.data.preprocess import ImageLoadError, load_image
from vihtr.data.sources.base import Sample
from vihtr.text.charset import Charset, UnknownCharReport
from vihtr.text.normalize import normalize_text

log = logging.getLogger(__name__)


def as_charset(charset: Charset | str | None) -> Charset:
    """Configs pass the charset as its string of characters; None means the Vietnamese charset."""
    if charset is None:
        return Charset()
    return charset if isinstance(charset, Charset) else Charset(str(charset))


def drop_unknown_labels(
    name: str, texts: Sequence[str], charset: Charset
) -> tuple[list[int], UnknownCharReport]:
    """Positions of the labels the charset can encode, and a report of the others (logged once)."""
    report = UnknownCharReport()
    keep = []
    for i, text in enumerate(texts):
        unknown = charset.unknown(text)
        if unknown:
            report.add(name, text, unknown)
        else:
            keep.append(i)
    if report:
        log.warning("%s: left out of training:\n%s", name, report.summary())
    return keep, report


def select_lines(
    name: str,
    keys: list[str],
    texts: list[str],
    groups: list[str],
    charset,
    fold,
    split: str,
    folds_csv,
    fold_seed: int,
) -> tuple[list[int], UnknownCharReport]:
    """Positions of the lines in (`fold`, `split`) whose labels the charset can encode, and the report of the
    others. Folds are taken first, on the full listing, so a line's fold never depends on which other lines
    were dropped."""
    chosen = select_fold(keys, groups, fold, split, folds_csv, seed=fold_seed)
    known, report = drop_unknown_labels(name, [texts[i] for i in chosen], as_charset(charset))
    return [chosen[i] for i in known], report


def read_labels(path: str | os.PathLike) -> list[tuple[str, str]]:
    """`relative_path<TAB>text` rows; blank lines are skipped, a row without a tab is an error."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rel, sep, text = line.partition("\t")
        if not sep:
            raise ValueError(f"{path}:{n}: expected 'path<TAB>text', got {line!r}")
        rows.append((rel.strip(), text))
    return rows


class LineFolderSource:
    """Line images listed in `<root>/<labels>`; the group (writer) of a line is its image's parent folder.

    `group_pattern`, a regex with one group matched against the relative path, picks another group key.
    `fold`/`split` keep one side of a writer-grouped fold split (see `vihtr.data.folds.select_fold`).
    `load_height` lets JPEG decoding shrink large scans on the fly, never below that height: far faster,
    and the model resizes to its own height anyway.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        name: str = "kalapa",
        labels: str = "labels.tsv",
        tone_style: str = "keep",
        charset: Charset | str | None = None,
        group_pattern: str | None = None,
        fold: int | str | None = None,
        split: str = "train",
        folds_csv: str | os.PathLike | None = None,
        fold_seed: int = DEFAULT_SEED,
        load_height: int | None = None,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.load_height = load_height
        rows = read_labels(self.root / labels)
        keys = [rel for rel, _ in rows]
        texts = [normalize_text(text, tone_style) for _, text in rows]
        pattern = re.compile(group_pattern) if group_pattern else None
        groups = [self._group(rel, pattern) for rel in keys]
        self.listing = list(
            zip(keys, texts, groups)
        )  # every line before any selection: what folds are made of
        chosen, self.unknown_report = select_lines(
            name, keys, texts, groups, charset, fold, split, folds_csv, fold_seed
        )
        present = [i for i in chosen if (self.root / keys[i]).is_file()]
        self.missing_images = len(chosen) - len(present)
        if self.missing_images:
            log.warning(
                "%s: %d listed image(s) not found under %s, left out", name, self.missing_images, root
            )
        self.keys = [keys[i] for i in present]
        self.texts = [texts[i] for i in present]
        self.groups = [groups[i] for i in present]
        self.bad_images = 0  # corrupt files met by `get` (per process: each DataLoader worker counts its own)
        self._reported: set[str] = set()

    @staticmethod
    def _group(rel: str, pattern: re.Pattern | None) -> str:
        if pattern is None:
            return str(Path(rel).parent)
        match = pattern.search(rel)
        if not match:
            raise ValueError(f"group_pattern {pattern.pattern!r} does not match {rel!r}")
        return match.group(1)

    def __len__(self) -> int:
        return len(self.keys)

    def _load(self, path: Path) -> Image.Image:
        if self.load_height is None or path.suffix.lower() not in (".jpg", ".jpeg"):
            return load_image(path)
        try:
            with Image.open(path) as img:
                img.draft("RGB", (1, self.load_height))  # DCT scaling by 1/2, 1/4, 1/8 while >= load_height
                img.load()
                return load_image(img)
        except ImageLoadError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ImageLoadError(f"{path}: not a readable image ({e})") from e

    def get(self, index: int, rng: random.Random) -> Sample:
        for step in range(len(self)):
            i = (index + step) % len(self)
            path = self.root / self.keys[i]
            try:
                image = self._load(path)
            except ImageLoadError as e:
                self.bad_images += 1
                if self.keys[i] not in self._reported:
                    self._reported.add(self.keys[i])
                    log.warning(
                        "%s: skipping unreadable image (%d so far): %s", self.name, self.bad_images, e
                    )
                continue
            return Sample(image=image, text=self.texts[i], source=self.name, group=self.groups[i])
        raise ImageLoadError(f"{self.name}: no readable image among {len(self)} lines")


def write_labels(source, path: str | os.PathLike) -> str:
    """Write a source's lines as `key<TAB>text` (e.g. the training folds' labels, for synthetic re-renders
    that must not see validation text); returns the path, so a config can pass it on as a file name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(f"{k}\t{t}\n" for k, t in zip(source.keys, source.texts)), encoding="utf-8")
    tmp.replace(path)  # atomic: concurrent runs never read half a file
    return str(path)
