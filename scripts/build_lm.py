"""Build the character address LM used for shallow fusion in beam search (`vihtr predict --lm`).

    python scripts/build_lm.py                       # fold 0 -> models/lm/address_fold0.json.gz
    python scripts/build_lm.py --fold 1 --synthetic 200000 --order 8 --real-repeat 5

Text: the Kalapa labels of the training folds only (never the held-out `--fold`, which scores the models)
and `--synthetic` lines from the seeded `AddressGenerator`, all in the old tone style the models are
trained on. The real lines are counted `--real-repeat` times so that their spelling habits are not
drowned by the synthetic ones. Prints the LM's per-character perplexity on the held-out fold's labels
next to a unigram baseline built from the same text.

Defaults from a small sweep on fold 0 (held-out per-char perplexity; unigram 35.0): order 6 / 7 / 8 / 10 / 12
gave 2.91 / 2.71 / 2.57 / 2.36 / 2.31 (200k synthetic lines, real x5, then x20 from order 9); 20k, 100k or
200k synthetic lines and real x1 / x5 / x20 / x50 moved it by at most 0.05.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from vihtr.data.sources.real import LineFolderSource
from vihtr.data.synthetic.address import AddressGenerator
from vihtr.inference.lm import CharNgramLM
from vihtr.paths import REPO_ROOT, data_root
from vihtr.text.normalize import normalize_text

REPO = REPO_ROOT
DEFAULT_DATA = data_root()


def kalapa_texts(data_root: Path, fold: int, split: str) -> list[str]:
    source = LineFolderSource(
        data_root / "kalapa2023", name="kalapa", tone_style="old", fold=fold, split=split,
        folds_csv=REPO / "data" / "folds" / "kalapa_folds.csv",
    )  # fmt: skip
    return source.texts


def synthetic_texts(n: int, seed: int) -> list[str]:
    generator = AddressGenerator()
    rng = random.Random(seed)
    return [normalize_text(generator.generate(rng), "old") for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--fold", type=int, default=0, help="held-out Kalapa fold (its labels are never used)"
    )
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--synthetic", type=int, default=100_000, help="synthetic address lines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", type=int, default=10, help="longest n-gram, in characters")
    parser.add_argument(
        "--real-repeat", type=int, default=20, help="count each real training line this often"
    )
    parser.add_argument("--prune-below", type=int, default=2, help="drop long n-grams seen fewer times")
    parser.add_argument("--prune-from", type=int, default=5, help="n-gram length from which pruning applies")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="default: models/lm/address_fold<F>.json.gz"
    )
    args = parser.parse_args(argv)

    output = args.output or REPO / "models" / "lm" / f"address_fold{args.fold}.json.gz"
    start = time.perf_counter()
    train = kalapa_texts(args.data_root, args.fold, "train")
    held_out = kalapa_texts(args.data_root, args.fold, "val")
    synthetic = synthetic_texts(args.synthetic, args.seed)
    lines = train * args.real_repeat + synthetic
    print(f"{len(train)} Kalapa training lines x{args.real_repeat} + {len(synthetic)} synthetic; "
          f"{len(held_out)} held-out lines (fold {args.fold}); text ready in {time.perf_counter() - start:.1f} s")  # fmt: skip

    start = time.perf_counter()
    lm = CharNgramLM.train(lines, order=args.order, prune_below=args.prune_below, prune_from=args.prune_from)
    built = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    lm.save(output)
    start = time.perf_counter()
    CharNgramLM.load(output)
    loaded = time.perf_counter() - start
    levels = lm.levels
    contexts = sum(len(level) for level in levels)
    entries = sum(len(e[1]) for level in levels for e in level.values())
    print(f"order {args.order}: {contexts} contexts, {entries} n-grams, built in {built:.1f} s, "
          f"loads in {loaded:.1f} s -> {output} ({output.stat().st_size / 1e6:.2f} MB)")  # fmt: skip

    unigram = CharNgramLM.train(lines, order=1)
    print(f"held-out per-char perplexity: {lm.perplexity(held_out):.3f} "
          f"(unigram {unigram.perplexity(held_out):.3f}); training text {lm.perplexity(train):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
