"""A folder of sample line images the page can show, served without ever leaving that folder.

Names are the files' paths relative to the folder ("62/0.jpg"). A request names a sample; it is looked up
in the folder's own listing, never joined onto the folder path, so `..`, absolute paths, encoded dots and
symlinks pointing outside cannot reach another file: anything not listed is simply not found.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SHIPPED_SAMPLES = Path(__file__).resolve().parent / "samples"


class SampleFolder:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root if root is not None else SHIPPED_SAMPLES).resolve()

    def listing(self) -> dict[str, Path]:
        """name -> file, for the regular image files inside the folder (walked again each call: it may change)."""
        found: dict[str, Path] = {}
        if not self.root.is_dir():
            return found
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(files):
                path = Path(folder) / file
                if file.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or path.is_symlink():
                    continue
                # a symlinked parent cannot appear (walk does not follow links); the check guards the rest
                if path.is_file() and path.resolve().is_relative_to(self.root):
                    found[path.relative_to(self.root).as_posix()] = path
        return found

    def choose(self, n: int, rng: random.Random | None = None) -> list[str]:
        """Up to n distinct sample names, at random."""
        names = list(self.listing())
        return (rng or random).sample(names, min(n, len(names)))

    def find(self, name: str) -> Path | None:
        """The file a sample name stands for, or None when the folder lists no such sample."""
        return self.listing().get(name)
