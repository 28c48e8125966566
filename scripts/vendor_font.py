"""Vendor an OFL font that the npm registry ships as per-subset web fonts (the @fontsource packages).

    npm pack @fontsource/square-peg && tar xzf fontsource-square-peg-*.tgz
    python scripts/vendor_font.py square-peg package/files/square-peg-{latin,latin-ext,vietnamese}-400-normal.woff \
        --license package/LICENSE

A @fontsource package splits a font by Unicode subset (latin, latin-ext, vietnamese), and a Vietnamese line
needs glyphs from several of them. The subsets are merged (fontTools) into one TrueType file,
`src/vihtr/assets/fonts/<name>/<name>.ttf`, with the licence beside it; `tests/test_fonts.py` then checks
that it covers the charset and draws every tone distinctly. (@expo-google-fonts packages ship whole .ttf
files: copy those as they are.)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fontTools.merge import Merger
from fontTools.ttLib import TTFont

from vihtr.data.synthetic.fonts import FONT_DIR


def merge_subsets(subsets: Sequence[Path], out: Path) -> Path:
    """Merge web-font subsets (woff, woff2 or ttf) into one TrueType file at `out`."""
    if not subsets:
        raise ValueError("no font subsets given")
    with tempfile.TemporaryDirectory() as tmp:
        plain = []
        for i, path in enumerate(subsets):
            font = TTFont(path)
            font.flavor = None  # woff -> plain sfnt: the merger reads TrueType files
            plain.append(Path(tmp) / f"{i}.ttf")
            font.save(plain[-1])
        merged = Merger().merge([str(p) for p in plain])
    out.parent.mkdir(parents=True, exist_ok=True)
    merged.save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the font's folder name, e.g. square-peg")
    parser.add_argument("subsets", nargs="+", type=Path, help="the subset files (woff, woff2 or ttf)")
    parser.add_argument("--license", type=Path, required=True, help="the package's OFL licence file")
    parser.add_argument("--fonts-dir", type=Path, default=FONT_DIR)
    args = parser.parse_args()
    folder = args.fonts_dir / args.name
    out = merge_subsets(args.subsets, folder / f"{args.name}.ttf")
    shutil.copyfile(args.license, folder / "OFL.txt")
    print(f"{out}: {len(TTFont(out).getBestCmap())} characters")


if __name__ == "__main__":
    main()
