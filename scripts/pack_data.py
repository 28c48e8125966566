"""Pack the real data small enough to travel to a lent GPU machine (64 MiB a call, repo included).

    python scripts/pack_data.py       # -> data/packed (about 31 MB)
    VIHTR_DATA_ROOT=data/packed python src/train.py ... data.sources.vnondb.path=data/packed/vnondb/lines.npz.xz

- Kalapa scans become greyscale JPEGs at the model height (the models read greyscale at that height
  anyway; the scans are 60-160 px high, colour, 110 MB), same folders and labels.tsv.
- VNOnDB pen strokes become one `.npz.xz` of int16 steps (`vihtr.data.sources.inkml.save_packed`), points
  rounded to 4 tablet units (under a tenth of a pixel at 48 px); every draw is still a fresh rendering.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

from vihtr.data.sources.inkml import inkml_lines, save_packed
from vihtr.data.sources.real import read_labels
from vihtr.paths import KALAPA_DIR, REPO_ROOT, data_root, kalapa_root, vnondb_archive


def pack_kalapa(src: Path, dst: Path, height: int, quality: int) -> int:
    """Every labelled scan at `height` px, greyscale; returns the bytes written."""
    total = 0
    for rel, _ in read_labels(src / "labels.tsv"):
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(src / rel) as img:
            img.draft("L", (1, height))  # DCT scaling: decodes large scans at a fraction of the cost
            gray = img.convert("L")
        width = max(1, round(gray.width * height / gray.height))
        gray.resize((width, height), Image.Resampling.LANCZOS).save(out, quality=quality)
        total += out.stat().st_size
    shutil.copy(src / "labels.tsv", dst / "labels.tsv")
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", type=Path, default=data_root())
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "packed")
    parser.add_argument("--height", type=int, default=48, help="the model height the lines are packed at")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality of the packed scans")
    parser.add_argument("--unit", type=int, default=4, help="VNOnDB points rounded to this many tablet units")
    args = parser.parse_args(argv)

    kalapa = pack_kalapa(kalapa_root(args.data_root), kalapa_root(args.out), args.height, args.quality)
    print(f"{KALAPA_DIR}: {kalapa / 1e6:.1f} MB of greyscale JPEG at {args.height} px")
    vnondb = args.out / "vnondb" / "lines.npz.xz"
    vnondb.parent.mkdir(parents=True, exist_ok=True)
    lines = inkml_lines(vnondb_archive(args.data_root))
    save_packed(lines, vnondb, unit=args.unit)
    print(f"vnondb: {len(lines)} lines, {vnondb.stat().st_size / 1e6:.1f} MB of strokes")


if __name__ == "__main__":
    main()
