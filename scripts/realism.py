"""Realism of synthetic lines, as numbers: classifiers learn to tell real Kalapa lines from synthetic ones.

    python scripts/realism.py --styles v1 form            # held-out accuracy per renderer style
    python scripts/realism.py --styles form strokes --real vnondb   # against real VNOnDB lines instead
    python scripts/realism.py --augment both              # both sides augmented as training augments them
    python scripts/realism.py --styles form --reader-cer models/vihtr-lite1 --out logs/font_cer.json

Both classifiers (`vihtr.data.synthetic.realism`: a small CNN on grey windows, and a logistic regression on
global image statistics) train on the Kalapa lines of writer folds 1-4 and as many synthetic address lines,
and are tested on fold 0 (432 lines) against 432 new synthetic lines: accuracy near 50 % means they cannot
tell them apart. `--real vnondb` puts 1,728 and 432 VNOnDB lines of the same folds (rendered as training
renders them) in the Kalapa lines' place; the `strokes` style is lines composed of real VNOnDB syllables. By default neither side is augmented (the renderer against the scans: training augments
real and synthetic lines alike, so augmentation is no difference between them); `--augment both` compares
what training feeds the model, `--augment synthetic` is the first measurement's protocol. Same seeds and
budget for every style. `--reader-cer` instead scores each font by the CER of a model trained
mostly on real lines (80 % of its training), the measure `FORM_FONTS` was chosen by.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import vihtr  # noqa: F401  (environment fixes before torch)
from vihtr.data.augment import LineAugment
from vihtr.data.sources.real import LineFolderSource
from vihtr.data.synthetic.corpus import HELD_OUT_FOLD
from vihtr.data.synthetic.fonts import font_names
from vihtr.data.synthetic.realism import RealismClassifier, StatsClassifier, line_stats, to_grey_line
from vihtr.data.synthetic.sources import AddressSource, SyllableSource
from vihtr.paths import kalapa_root

log = logging.getLogger("realism")


@dataclass
class Lines:
    grey: list[np.ndarray]  # what the CNN sees
    stats: list[np.ndarray]  # what the statistics classifier sees
    texts: list[str]

    @classmethod
    def of(cls, samples) -> Lines:
        return cls(
            [to_grey_line(s.image) for s in samples],
            [line_stats(s.image, len(s.text)) for s in samples],
            [s.text for s in samples],
        )


# What each side gets of the training augmentation (`LineAugment(0.5)`, which training applies to real and
# synthetic lines alike): "none" compares the renderer with the scans, "both" what the model sees in
# training, "synthetic" (the first measurement's protocol) augments the synthetic side only.
AUGMENT = ("none", "both", "synthetic")


REAL = ("kalapa", "vnondb")
# synthetic lines compared with the real VNOnDB ones: as many as the Kalapa sides have (training, test)
VNONDB_LINES = {"train": 1728, "val": 432}


def real_lines(split: str, augment: str = "none", real: str = "kalapa") -> Lines:
    if real == "vnondb":
        from vihtr.data.sources.inkml import InkMLSource
        from vihtr.paths import REPO_ROOT, vnondb_archive

        folds = REPO_ROOT / "data" / "folds" / "vnondb_folds.csv"
        source = InkMLSource(vnondb_archive(), fold=HELD_OUT_FOLD, split=split, folds_csv=folds, height=64)
        picks = random.Random(split).sample(range(len(source)), min(len(source), VNONDB_LINES[split]))
    else:
        source = LineFolderSource(kalapa_root(), fold=HELD_OUT_FOLD, split=split)
        picks = range(len(source))
    rng = random.Random(0)
    samples = [source.get(i, rng) for i in picks]
    if augment == "both":
        augmenter = LineAugment(0.5)
        samples = [
            replace(s, image=augmenter(s.image, random.Random(f"real:{i}"))) for i, s in enumerate(samples)
        ]
    return Lines.of(samples)


def synthetic_lines(style: str, count: int, seed: int, augment: str = "none", real: str = "kalapa") -> Lines:
    """`style`: a font renderer's (v1, form), or `strokes`: lines composed of real VNOnDB syllables (the
    bank), laid on form paper against Kalapa, drawn as VNOnDB's ink against VNOnDB."""
    if style == "strokes":
        source = SyllableSource(
            size=count, seed=seed, style="form", held_out_fold=HELD_OUT_FOLD, augment=augment != "none",
            text_weights={"address": 1.0} if real == "kalapa" else {"corpus": 1.0},
            kalapa_look=1.0 if real == "kalapa" else 0.0,
        )  # fmt: skip
    else:
        source = AddressSource(
            size=count, seed=seed, style=style, held_out_fold=HELD_OUT_FOLD, augment=augment != "none"
        )
    return Lines.of([source.get(i, random.Random(f"realism:{seed}:{i}")) for i in range(count)])


def px_per_char(*sets: Lines) -> list[float]:
    """Quartiles of line width per character at the classifiers' line height."""
    ratios = [g.shape[1] / max(1, len(t)) for lines in sets for g, t in zip(lines.grey, lines.texts)]
    return [round(float(q), 1) for q in np.percentile(ratios, [25, 50, 75])]


def reader_cer_by_font(model: Path, style: str, lines: int, threads: int) -> dict[str, float]:
    """Each font's CER under a recogniser trained mostly on real lines: the fonts it reads best are the
    ones that look most like the real hands it learnt (the CNN classifier tells every font apart)."""
    import editdistance

    from vihtr.inference.predictor import Predictor

    predictor = Predictor.from_release([model], threads=threads, domain="general")
    scores = {}
    for font in font_names():
        source = AddressSource(size=lines, seed=3, style=style, fonts=[font], held_out_fold=HELD_OUT_FOLD)
        samples = [source.get(i, random.Random(f"fonts:{i}")) for i in range(lines)]
        predictions = predictor.predict([s.image for s in samples])
        edits = sum(editdistance.eval(p.text, s.text) for p, s in zip(predictions, samples))
        scores[font] = round(edits / sum(len(s.text) for s in samples), 4)
        log.info("%s: CER %.3f", font, scores[font])
    return dict(sorted(scores.items(), key=lambda kv: kv[1]))


def write_json(path: Path | None, data: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--styles", nargs="+", default=["v1", "form"], help="renderer styles to compare")
    parser.add_argument(
        "--augment",
        choices=AUGMENT,
        default="none",
        help="training augmentation on neither side (renderer vs scans), both, or the synthetic side only",
    )
    parser.add_argument(
        "--real", choices=REAL, default="kalapa", help="the real lines: Kalapa scans or VNOnDB renderings"
    )
    parser.add_argument("--epochs", type=int, default=6, help="CNN epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-cnn", action="store_true", help="only the statistics classifier (seconds)")
    parser.add_argument("--reader-cer", type=Path, metavar="MODEL", help="only score fonts by MODEL's CER")
    parser.add_argument("--font-lines", type=int, default=32, help="lines per font for --reader-cer")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(args.threads)
    if args.reader_cer:
        scores = reader_cer_by_font(args.reader_cer, args.styles[0], args.font_lines, args.threads)
        print(json.dumps(scores, indent=1))
        write_json(args.out, scores)
        return

    real_train, real_test = (real_lines(split, args.augment, args.real) for split in ("train", "val"))
    results = {
        "real_source": args.real,
        "augment": args.augment,
        "real": {"train": len(real_train.texts), "test": len(real_test.texts)},
    }
    results["real"]["px_per_char"] = px_per_char(real_train, real_test)
    log.info("real lines: %s", results["real"])
    for style in args.styles:
        start = time.time()
        synth_train = synthetic_lines(
            style, len(real_train.texts), seed=1, augment=args.augment, real=args.real
        )
        synth_test = synthetic_lines(
            style, len(real_test.texts), seed=2, augment=args.augment, real=args.real
        )
        stats = StatsClassifier().fit(real_train.stats, synth_train.stats)
        results[style] = {
            "stats": vars(stats.score(real_test.stats, synth_test.stats)),
            "px_per_char": px_per_char(synth_train, synth_test),
        }
        if not args.no_cnn:
            cnn = RealismClassifier(epochs=args.epochs).fit(real_train.grey, synth_train.grey)
            results[style]["cnn"] = vars(cnn.score(real_test.grey, synth_test.grey))
        results[style]["seconds"] = round(time.time() - start)
        log.info("%s: %s", style, results[style])
    print(
        f"held-out accuracy telling real from synthetic lines (50 %: cannot tell), augmentation: {args.augment}"
    )
    print(f"{'lines':<8} {'CNN':>7} {'statistics':>11} {'px/char q1,med,q3':>20}")
    print(f"{'real':<8} {'':>7} {'':>11} {str(results['real']['px_per_char']):>20}")
    for style in args.styles:
        r = results[style]
        cnn = f"{r['cnn']['accuracy']:.3f}" if "cnn" in r else "-"
        print(f"{style:<8} {cnn:>7} {r['stats']['accuracy']:>11.3f} {str(r['px_per_char']):>20}")
    write_json(args.out, results)


if __name__ == "__main__":
    main()
