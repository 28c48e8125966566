"""How often a line's text depends on the other lines in its batch (it should never).

    python scripts/batch_invariance.py [--models models/vihtr-lite1] [--lines 200] [--batch-size 16]

Reads the first N Kalapa lines once each alone and once as the CLI reads a folder (one call, batches of
`--batch-size` lines of similar width), or with `--mixed` as a server sees them (calls of `--batch-size`
lines in random order, so widths mix), and prints the share of lines whose text or confidence (beyond
1e-4) differs. `--versus onnx` also reads them batched with the other backend and counts the lines
whose text differs between the two.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

import vihtr  # noqa: F401  (torchvision fix before anything imports timm)
from vihtr.inference.predictor import Predictor
from vihtr.paths import REPO_ROOT, data_root, kalapa_root

REPO = REPO_ROOT
DEFAULT_DATA = data_root()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[str(REPO / "models" / "vihtr-lite1")])
    parser.add_argument("--data-root", default=str(DEFAULT_DATA))
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mixed", action="store_true", help="random calls of --batch-size lines")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--versus", choices=["torch", "onnx"], help="compare with this backend's reading")
    args = parser.parse_args()
    kalapa = kalapa_root(args.data_root)
    rows = (kalapa / "labels.tsv").read_text(encoding="utf-8").splitlines()[: args.lines]
    paths = [str(kalapa / row.split("\t")[0]) for row in rows]
    options = {"threads": args.threads, "batch_size": args.batch_size}
    predictor = Predictor.from_release(args.models, backend=args.backend, **options)
    alone = [predictor.predict_one(p) for p in paths]
    if args.mixed:
        order = list(range(len(paths)))
        random.Random(0).shuffle(order)
        batched = [None] * len(paths)
        for start in range(0, len(order), args.batch_size):
            chunk = order[start : start + args.batch_size]
            for i, p in zip(chunk, predictor.predict([paths[i] for i in chunk])):
                batched[i] = p
    else:
        batched = predictor.predict(paths)
    text = sum(a.text != b.text for a, b in zip(alone, batched))
    confidence = sum(abs(a.confidence - b.confidence) > 1e-4 for a, b in zip(alone, batched))
    report = {
        "lines": len(paths),
        "batch_size": args.batch_size,
        "mixed": args.mixed,
        "text_changed": text,
        "text_changed_share": round(text / len(paths), 4),
        "confidence_changed": confidence,
    }
    if args.versus:
        other = Predictor.from_release(args.models, backend=args.versus, **options).predict(paths)
        report |= {
            "backend": args.backend,
            "versus": args.versus,
            "versus_text_changed": sum(a.text != b.text for a, b in zip(batched, other)),
            "versus_max_confidence_diff": max(
                abs(a.confidence - b.confidence) for a, b in zip(batched, other)
            ),
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
