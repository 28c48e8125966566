"""Write 5 writer-grouped folds of a real dataset to `data/folds/<dataset>_folds.csv` (`path,text,writer,fold`).

    python scripts/make_folds.py kalapa vnondb [--data-root ../shared/data] [--seed 0]

Sources read the same file when it exists; without it they compute the same folds in memory.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

from vihtr.data.folds import DEFAULT_SEED, N_FOLDS, assign_folds, write_folds_csv
from vihtr.data.sources.inkml import DEFAULT_CACHE_DIR, InkMLSource
from vihtr.data.sources.real import LineFolderSource
from vihtr.paths import REPO_ROOT, data_root, kalapa_root, vnondb_archive


def load(dataset: str, data_root: Path, cache_dir: Path):
    if dataset == "kalapa":
        return LineFolderSource(kalapa_root(data_root), name="kalapa", tone_style="keep")
    if dataset == "vnondb":
        return InkMLSource(vnondb_archive(data_root), name="vnondb", cache_dir=cache_dir)
    raise ValueError(f"unknown dataset {dataset!r} (kalapa or vnondb)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("datasets", nargs="+", choices=["kalapa", "vnondb"])
    parser.add_argument(
        "--data-root",
        type=Path,
        default=data_root(),
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "data" / "folds")
    parser.add_argument("--folds", type=int, default=N_FOLDS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for dataset in args.datasets:
        source = load(dataset, args.data_root, args.cache_dir)
        keys, texts, groups = zip(*source.listing)  # all lines, as the sources assign folds in memory
        folds = assign_folds(groups, args.folds, args.seed)
        out = args.out_dir / f"{dataset}_folds.csv"
        write_folds_csv(out, keys, texts, groups, folds)
        lines = Counter(folds[g] for g in groups)
        writers = Counter(folds.values())
        summary = ", ".join(f"{k}: {lines[k]} lines / {writers[k]} writers" for k in range(args.folds))
        print(f"{out}: {len(keys)} lines, {len(folds)} writers; {summary}")


if __name__ == "__main__":
    main()
