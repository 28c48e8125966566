"""How well whole pages read: line finding against the true line boxes, and page CER against reading the same
lines from their own crops.

    python scripts/page_benchmark.py                     # fold 0 (held out), every page kind, the default release
    python scripts/page_benchmark.py --fold 1 --layout-only --count 60   # tune line finding on fold 1

Pages come from `vihtr.data.pages.page_set`: VNOnDB tablet screens (real handwritten pages with exact line
boxes), clean and as phone photos, and Kalapa line scans stacked on ruled forms. For each kind:
- line finding: precision, recall and F1 of the found boxes at IoU >= 0.5 (one-to-one);
- page CER: edit distance of the page's text (lines top to bottom, joined by a newline) to the true lines
  joined the same way, over its length, summed over pages; line CER: the same with each true line read from
  its own crop (drawn alone on the same paper); their ratio;
- seconds per page on the given threads (line finding and reading).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vihtr.data.pages import PAGE_KINDS, page_set
from vihtr.inference.layout import find_lines, match_boxes
from vihtr.inference.pages import PageReader
from vihtr.inference.predictor import Predictor
from vihtr.text.metrics import CharErrorRate


def layout_scores(pages) -> dict:
    tp = found_n = true_n = 0
    start = time.perf_counter()
    for page in pages:
        found = [line.box for line in find_lines(page.image)]
        tp += len(match_boxes(found, page.boxes))
        found_n += len(found)
        true_n += len(page.boxes)
    precision, recall = tp / max(found_n, 1), tp / max(true_n, 1)
    return {
        "pages": len(pages),
        "lines": true_n,
        "found": found_n,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 4),
        "find_s_per_page": round((time.perf_counter() - start) / max(len(pages), 1), 3),
    }


def reading_scores(pages, predictor: Predictor, domain: str) -> dict:
    reader = PageReader(predictor)
    start = time.perf_counter()
    read = [reader.read(page.image, domain=domain) for page in pages]
    seconds = (time.perf_counter() - start) / max(len(pages), 1)
    page_cer, line_cer = CharErrorRate(), CharErrorRate()
    page_cer.update([r.text for r in read], [p.text for p in pages])
    alone = predictor.predict([crop for p in pages for crop in p.alone], domain=domain)
    texts, at = [], 0
    for page in pages:
        texts.append("\n".join(pred.text for pred in alone[at : at + len(page.alone)]))
        at += len(page.alone)
    line_cer.update(texts, [p.text for p in pages])
    page_value, line_value = float(page_cer.compute()), float(line_cer.compute())
    return {
        "page_cer": round(page_value, 4),
        "line_cer": round(line_value, 4),
        "ratio": round(page_value / max(line_value, 1e-9), 3),
        "read_s_per_page": round(seconds, 3),
    }


def orientation_scores(pages, predictor: Predictor) -> dict:
    """Each page turned 0, 90, 180 and 270 degrees: how often the page reader finds the turn back."""
    from vihtr.inference.orientation import turned

    reader = PageReader(predictor)
    right = {turn: 0 for turn in (0, 90, 180, 270)}
    for page in pages:
        for turn in right:
            found, _ = reader.upright_lines(turned(page.image, turn))
            right[turn] += found == (360 - turn) % 360
    return {f"upright_from_{turn}": round(n / max(len(pages), 1), 4) for turn, n in right.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--kinds", nargs="+", default=list(PAGE_KINDS), choices=PAGE_KINDS)
    parser.add_argument(
        "--count", type=int, default=None, help="pages per kind (default: every VNOnDB screen, 20 forms)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--release", nargs="*", default=None, help="release folders (default: the shipped default)"
    )
    parser.add_argument("--domain", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout-only", action="store_true", help="measure line finding only (no model)")
    parser.add_argument(
        "--orientation",
        action="store_true",
        help="measure only how often a turned page is turned back upright",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = None if args.layout_only else Predictor.from_release(args.release, threads=args.threads)
    results = {}
    for kind in args.kinds:
        pages = page_set(kind, args.fold, args.count, args.seed)
        if args.orientation:
            results[kind] = {"pages": len(pages), **orientation_scores(pages, predictor)}
            print(kind, json.dumps(results[kind]), flush=True)
            continue
        results[kind] = layout_scores(pages)
        if predictor is not None:
            results[kind].update(reading_scores(pages, predictor, args.domain))
        print(kind, json.dumps(results[kind]), flush=True)
    if args.out:
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "command": "python scripts/page_benchmark.py "
            + " ".join(
                f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items()
                if v not in (None, False) and k != "out"
            ),
            "fold": args.fold,
            "results": results,
        }
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
