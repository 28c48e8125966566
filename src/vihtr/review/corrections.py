"""Reviewed lines saved as a training set: a folder of line images and a `labels.tsv`, the layout
`vihtr.data.sources.real.LineFolderSource` reads (so `src/train.py` and adaptation train on it as it is).

    DIR/labels.tsv          images/<name><TAB>text, one line per reviewed image
    DIR/images/<name>       the image as it was sent; <name> is its content's hash, chosen here

Safe to point a server at: every name is chosen here (never a client's), images are checked as images
under a size limit, the folder holds at most `max_lines` lines, and each text is made NFC and checked
against the charset (a character the model cannot learn is refused with its name, never dropped).
Writes are atomic (a temporary file, then a rename): a failed write leaves every line saved before it as
it was. Saving the same image again replaces its text.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vihtr.data.sources.real import read_labels
from vihtr.text.charset import Charset

LABELS = "labels.tsv"
IMAGES = "images"
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
MAX_TEXT_CHARS = 300


class CorrectionError(ValueError):
    """A line that cannot be saved, and why; `status` is the HTTP status a server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SavedLine:
    key: str  # images/<name>, relative to the folder
    text: str  # NFC
    replaced: bool  # the image was saved before, with another text or the same


def clean_text(text: str, charset: Charset) -> str:
    """The text as it will be learnt: NFC, surrounding spaces off, inner runs of spaces as one; raises
    `CorrectionError` for an empty text, a text over `MAX_TEXT_CHARS`, or characters outside the charset."""
    text = " ".join(unicodedata.normalize("NFC", str(text)).split())
    if not text:
        raise CorrectionError("the text is empty: type what the line says (a blank line teaches nothing)")
    if len(text) > MAX_TEXT_CHARS:
        raise CorrectionError(f"the text has {len(text)} characters, at most {MAX_TEXT_CHARS} for one line")
    unknown = sorted(set(charset.unknown(text)))
    if unknown:
        names = ", ".join(f"{c!r} ({unicodedata.name(c, f'U+{ord(c):04X}')})" for c in unknown)
        raise CorrectionError(f"the model cannot learn these characters: {names}; write them another way")
    return text


def image_suffix(data: bytes, max_bytes: int, max_pixels: int) -> str:
    """The file suffix of an image in an accepted format; raises `CorrectionError` for anything else."""
    if not data:
        raise CorrectionError("empty image")
    if len(data) > max_bytes:
        raise CorrectionError(f"image of {len(data):,} bytes is over the limit of {max_bytes:,}", 413)
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            size, kind = image.width * image.height, image.format
            image.verify()
    except Image.DecompressionBombError:
        raise CorrectionError(f"image is over the limit of {max_pixels:,} pixels", 413) from None
    except Exception:
        raise CorrectionError(f"not an image in a supported format ({', '.join(FORMATS)})") from None
    if size > max_pixels:
        raise CorrectionError(f"image of {size:,} pixels is over the limit of {max_pixels:,}", 413)
    return FORMATS[kind]


def read_rows(path: Path) -> dict[str, str]:
    """`labels.tsv` as key -> text (later rows win), {} when there is none yet."""
    return dict(read_labels(path)) if path.is_file() else {}


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class CorrectionStore:
    """A folder of reviewed lines (see the module's docstring); thread-safe within one process."""

    def __init__(
        self,
        root: str | os.PathLike,
        charset: Charset | None = None,
        max_lines: int = 20_000,
        max_image_bytes: int = 10 * 1024 * 1024,
        max_pixels: int = 40_000_000,
    ) -> None:
        self.root = Path(root)
        self.charset = charset or Charset()
        self.max_lines = max_lines
        self.max_image_bytes = max_image_bytes
        self.max_pixels = max_pixels
        self._lock = threading.Lock()
        (self.root / IMAGES).mkdir(parents=True, exist_ok=True)

    @property
    def labels(self) -> Path:
        return self.root / LABELS

    def rows(self) -> dict[str, str]:
        return read_rows(self.labels)

    def __len__(self) -> int:
        return len(self.rows())

    def add(self, image: bytes, text: str) -> SavedLine:
        """Save one reviewed line: the image (once; named by its content) and its text."""
        text = clean_text(text, self.charset)
        suffix = image_suffix(image, self.max_image_bytes, self.max_pixels)
        key = f"{IMAGES}/{hashlib.sha256(image).hexdigest()[:24]}{suffix}"
        with self._lock:
            rows = self.rows()
            replaced = key in rows
            if not replaced and len(rows) >= self.max_lines:
                raise CorrectionError(
                    f"the folder holds its limit of {self.max_lines:,} lines: start another", 507
                )
            target = self.root / key
            if not target.is_file():
                write_atomically(target, image)
            rows[key] = text
            write_atomically(self.labels, "".join(f"{k}\t{t}\n" for k, t in rows.items()).encode("utf-8"))
        return SavedLine(key, text, replaced)


@dataclass
class ImportReport:
    saved: int = 0
    replaced: int = 0
    skipped_unreviewed: int = 0
    errors: list[str] | None = None


REVIEWED = ("accepted", "corrected")  # the page's export: lines a person has checked


def read_table(path: str | os.PathLike) -> list[dict]:
    """Rows of a `vihtr predict` output or a page export: CSV, TSV or JSON with `path` and `text`."""
    import csv
    import json

    path = Path(path)
    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise CorrectionError(f"{path}: a JSON list of objects was expected")
        return rows
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def import_table(table: str | os.PathLike, store: CorrectionStore) -> ImportReport:
    """Save each row of a reviewed table into `store`. The image is the row's `path` (the page's export: its
    `name`; relative paths: from the working directory, else from the table's folder). A table with a
    `status` column (the page's export) gives only its checked rows; rows with an `error` are left out. Bad
    rows are reported, not fatal."""
    table = Path(table)
    report = ImportReport(errors=[])
    for number, row in enumerate(read_table(table), start=2 if table.suffix.lower() != ".json" else 1):
        if row.get("error"):
            continue
        if "status" in row and row["status"] not in REVIEWED:
            report.skipped_unreviewed += 1
            continue
        where = f"{table.name}, row {number}"
        named = str(row.get("path") or row.get("name") or "")
        image = Path(named)
        if not image.is_file() and not image.is_absolute():
            image = table.parent / image
        if not named or not image.is_file():
            report.errors.append(f"{where}: no image at {named!r}")
            continue
        try:
            saved = store.add(image.read_bytes(), str(row.get("text") or ""))
        except CorrectionError as e:
            report.errors.append(f"{where}: {e}")
            continue
        report.saved += 1
        report.replaced += saved.replaced
    return report
