"""Write a seeded synthetic set to data/synth/<source>/: images/*.jpg, labels.tsv and a contact sheet,
plus data/synth/real_vs_synthetic.png (real training lines and synthetic addresses in alternate rows).

    python scripts/make_data.py                         # every source, counts from conf/make_data.yaml
    python scripts/make_data.py --sources synth_address --count 500 --out /tmp/synth

Line i of a source is rendered with `random.Random(f"{seed}:{source}:{i}")`, so a rerun gives the same
files and an interrupted run resumes: images already on disk are kept, and labels.tsv is rewritten
from the texts (which depend only on the seed) once every image exists.
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import hydra
from omegaconf import OmegaConf
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

import vihtr  # noqa: F401  (environment fixes before anything else)
from vihtr.paths import ASSETS_DIR, REPO_ROOT

DEFAULT_CONFIG = REPO_ROOT / "conf" / "make_data.yaml"
SHEET_FONT = ASSETS_DIR / "fonts" / "patrick-hand" / "PatrickHand_400Regular.ttf"

log = logging.getLogger("make_data")


def build_source(spec: dict, seed: int):
    """A source as the training configs define one: `_target_` and its constructor's keywords."""
    if "_target_" not in spec:
        raise ValueError(
            f"source {spec.get('name')!r}: no _target_ (the class to build, e.g. "
            "vihtr.data.synthetic.sources.AddressSource)"
        )
    return hydra.utils.instantiate(spec, seed=seed)


def write_source(source, out_dir: Path, seed: int, quality: int = 90) -> int:
    """Render every missing image of `source` into out_dir/images and write labels.tsv; returns how many were new."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    width = len(str(len(source) - 1))
    rows, new = [], 0
    for index in tqdm(range(len(source)), desc=source.name, unit="line"):
        rel = f"images/{index:0{width}d}.jpg"
        path = out_dir / rel
        if path.is_file():
            text = source.text(index)
        else:
            sample = source.get(index, random.Random(f"{seed}:{source.name}:{index}"))
            tmp = path.with_suffix(".tmp.jpg")
            sample.image.save(tmp, quality=quality)
            tmp.replace(path)  # an interrupted run never leaves half an image under the final name
            text, new = sample.text, new + 1
        rows.append(f"{rel}\t{text}")
    (out_dir / "labels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return new


def contact_sheet(out_dir: Path, n: int = 24, width: int = 1400) -> Path:
    """The first `n` lines of a written set, each under its label, in one PNG for a person to look at."""
    rows = [
        line.split("\t", 1) for line in (out_dir / "labels.tsv").read_text(encoding="utf-8").splitlines()[:n]
    ]
    font = ImageFont.truetype(str(SHEET_FONT), 18) if SHEET_FONT.is_file() else ImageFont.load_default()
    tiles = []
    for rel, text in rows:
        image = Image.open(out_dir / rel).convert("RGB")
        if image.width > width:
            image = image.resize((width, max(1, round(image.height * width / image.width))))
        tile = Image.new("RGB", (width, image.height + 28), "white")
        ImageDraw.Draw(tile).text((4, 2), text, fill=(200, 0, 0), font=font)
        tile.paste(image, (0, 26))
        tiles.append(tile)
    sheet = Image.new("RGB", (width, sum(t.height + 6 for t in tiles)), (128, 128, 128))
    y = 0
    for tile in tiles:
        sheet.paste(tile, (0, y))
        y += tile.height + 6
    path = out_dir / "contact_sheet.png"
    sheet.save(path)
    return path


def real_vs_synthetic_sheet(
    out_root: Path, synthetic_dir: Path, n: int = 12, height: int = 64
) -> Path | None:
    """Real Kalapa lines (training writers) and synthetic lines in alternate rows, at one height, in one PNG:
    what `scripts/realism.py` measures, for a person to see. None without the real data."""
    from vihtr.data.sources.real import LineFolderSource
    from vihtr.data.synthetic.corpus import HELD_OUT_FOLD
    from vihtr.paths import kalapa_root

    if not (kalapa_root() / "labels.tsv").is_file() or not (synthetic_dir / "labels.tsv").is_file():
        return None
    real = LineFolderSource(kalapa_root(), fold=HELD_OUT_FOLD, split="train")
    rng = random.Random(0)
    real_images = [real.get(i, rng).image for i in rng.sample(range(len(real)), min(n, len(real)))]
    rows = (synthetic_dir / "labels.tsv").read_text(encoding="utf-8").splitlines()[:n]
    synthetic = [Image.open(synthetic_dir / row.split("\t")[0]).convert("RGB") for row in rows]
    pairs = [image for pair in zip(real_images, synthetic) for image in pair]
    width = max(round(im.width * height / im.height) for im in pairs)
    sheet = Image.new("RGB", (width + 90, len(pairs) * (height + 4)), (128, 128, 128))
    draw = ImageDraw.Draw(sheet)
    for k, image in enumerate(pairs):
        y = k * (height + 4)
        draw.text((4, y + height // 2 - 6), "real" if k % 2 == 0 else "synthetic", fill="white")
        sheet.paste(image.resize((round(image.width * height / image.height), height)), (90, y))
    path = out_root / "real_vs_synthetic.png"
    sheet.save(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, help="output folder (default: the config's out_dir)")
    parser.add_argument("--sources", nargs="+", help="source names to write (default: all in the config)")
    parser.add_argument("--count", type=int, help="lines per source (overrides the config)")
    parser.add_argument("--seed", type=int, help="overrides the config's seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    config = OmegaConf.to_container(OmegaConf.load(args.config), resolve=True)
    seed = config["seed"] if args.seed is None else args.seed
    out_root = args.out or REPO_ROOT / config["out_dir"]
    for name, spec in config["sources"].items():
        if args.sources and name not in args.sources:
            continue
        if args.count is not None:
            spec["size"] = args.count
        source = build_source({"name": name, **spec}, seed)
        new = write_source(source, out_root / name, seed)
        sheet = contact_sheet(out_root / name)
        log.info(
            "%s: %d lines (%d new) in %s; contact sheet %s", name, len(source), new, out_root / name, sheet
        )
    sheet = real_vs_synthetic_sheet(out_root, out_root / "synth_address")
    if sheet:
        log.info("real and synthetic lines side by side: %s", sheet)


if __name__ == "__main__":
    main()
