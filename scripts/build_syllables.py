"""Build the bank of real handwritten syllables from the VNOnDB training folds (once; a few minutes).

    python scripts/build_syllables.py                     # -> $VIHTR_CACHE_DIR/syllables/vnondb_syllables_fold0.npz.xz
    python scripts/build_syllables.py --sheets data/syllables   # plus contact sheets to check the splits by eye

Each line of the folds other than `--held-out-fold` is force-aligned to its label by the released model
(`vihtr.inference.syllable_split`), its strokes split into syllables, and the syllables that split cleanly are
kept with their writer's spacing (`vihtr.data.syllables.bank`). The held-out fold's lines are never read.
Prints a report (lines, syllables kept, why lines were dropped) and writes it beside the bank as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import torch

from vihtr.data.sources.inkml import InkMLSource
from vihtr.data.syllables.bank import SyllableBank, build_bank, default_bank_path
from vihtr.data.syllables.sheets import split_sheet, syllable_sheet
from vihtr.inference.syllable_split import SyllableSplitter
from vihtr.models.release import Release
from vihtr.paths import REPO_ROOT, data_root, vnondb_archive


def training_lines(held_out_fold: int, charset, root: Path | None = None) -> InkMLSource:
    """The VNOnDB lines of every fold but `held_out_fold`, labels as the training data has them."""
    return InkMLSource(
        vnondb_archive(root),
        tone_style="old",
        charset=charset,
        fold=held_out_fold,
        split="train",
        folds_csv=REPO_ROOT / "data" / "folds" / "vnondb_folds.csv",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--release", type=Path, default=REPO_ROOT / "models" / "vihtr-lite1")
    parser.add_argument("--held-out-fold", type=int, default=0, help="the writer fold never read")
    parser.add_argument("--data-root", type=Path, default=None, help="default $VIHTR_DATA_ROOT")
    parser.add_argument("--out", type=Path, default=None, help="default: the data cache")
    parser.add_argument("--limit", type=int, default=None, help="only the first N lines (a quick look)")
    parser.add_argument("--sheets", type=Path, default=None, help="write contact sheets to this folder")
    parser.add_argument("--sheets-only", action="store_true", help="only the sheets, from the bank there is")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)

    model, preprocess, _ = Release(args.release).load()
    source = training_lines(args.held_out_fold, model.charset, args.data_root or data_root())
    splitter = SyllableSplitter(model, preprocess)
    out = args.out or default_bank_path(args.held_out_fold)
    if args.sheets_only:
        bank = SyllableBank.load(out)
    else:
        bank, report = build_bank(source, splitter, limit=args.limit)
        bank.save(out)
        report["bank"] = str(out)
        report["megabytes"] = round(out.stat().st_size / 1e6, 2)
        out.with_suffix("").with_suffix(".json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        print(json.dumps(report, indent=2, ensure_ascii=False))

    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
        rng = random.Random(0)
        picks = rng.sample(range(min(len(source), args.limit or len(source))), 12)
        items = [(source.lines[i].points, source.lines[i].stroke_ends) for i in picks]
        splits = [splitter.split(p, e, source.texts[i]) for (p, e), i in zip(items, picks)]
        split_sheet([(p, e, s) for (p, e), s in zip(items, splits)]).save(args.sheets / "splits.png")
        syllable_sheet(rng.sample(bank.syllables, min(64, len(bank)))).save(args.sheets / "syllables.png")
        print(f"contact sheets: {args.sheets}/splits.png, {args.sheets}/syllables.png")


if __name__ == "__main__":
    main()
