"""Make and score released models.

    # export a training checkpoint (averaged or not) as an fp16 release with its config, charset, preprocessing
    python scripts/release.py export logs/train/runs/<run>/checkpoints/averaged.ckpt models/vihtr-lite1 \
        --notes "what data, steps, hardware"
    # score releases (each alone, and together as an ensemble) on the held-out writer fold
    python scripts/release.py score models/vihtr-lite1 models/extra/vihtr-b1 --fold 0 --out models/scores.json
    # the same with the fold's address LM fused into beam search (scripts/build_lm.py --fold 0)
    python scripts/release.py score models/extra/vihtr-b1 --method beam --lm models/lm/address_fold0.json.gz --lm-weight 0.3

Held-out data: the Kalapa lines of writer fold `--fold` and the VNOnDB lines of the same fold (writer-disjoint
from the training folds), rendered with a fixed seed per line so every run scores the same images.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import vihtr  # noqa: F401  (torchvision fix first)
from vihtr.data.sources.inkml import InkMLSource
from vihtr.data.sources.real import LineFolderSource
from vihtr.inference.lm import DEFAULT_LM_WEIGHT, CharNgramLM
from vihtr.inference.predictor import Predictor
from vihtr.models.release import save_release
from vihtr.text.metrics import LineMetrics
from vihtr.training.evaluate import load_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def portable_path(path: str | Path) -> str:
    """A path as the release may record it: relative to the repository, or only the run's own part."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(Path(*path.parts[-3:]))  # <run>/checkpoints/<file>: no machine's directories


def checkpoint_steps(path: str | Path) -> int | None:
    """The optimizer steps behind a Lightning checkpoint (None for a release folder)."""
    if Path(path).is_dir():
        return None
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False).get("global_step", 0))


def export(args: argparse.Namespace) -> None:
    model, preprocess = load_model(args.checkpoint)
    n_params = sum(p.numel() for p in model.parameters())
    metadata = {
        "source_checkpoint": portable_path(args.checkpoint),
        "parameters": n_params,
        "trained_steps": checkpoint_steps(args.checkpoint),
        "notes": args.notes,
        "decode_method": args.decode_method,  # what Predictor(method=None) uses: the held-out best
    }
    folder = save_release(model, args.folder, preprocess, metadata)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    print(f"wrote {folder} ({n_params / 1e6:.1f} M parameters, {size:.1f} MB)")


def held_out(
    data_root: Path, fold: int, limit: int | None, height: int, sources: list[str]
) -> dict[str, tuple[list, list[str]]]:
    """Source name -> (images, labels) of the held-out fold; VNOnDB strokes rendered with seed = line index."""
    folds = REPO / "data" / "folds"
    kalapa = LineFolderSource(
        data_root / "kalapa2023", name="kalapa", tone_style="old", fold=fold, split="val",
        folds_csv=folds / "kalapa_folds.csv" if (folds / "kalapa_folds.csv").exists() else None,
    )  # fmt: skip
    vnondb = InkMLSource(
        data_root / "vnondb" / "InkData_line.tar.xz", name="vnondb", tone_style="old", fold=fold, split="val",
        folds_csv=folds / "vnondb_folds.csv" if (folds / "vnondb_folds.csv").exists() else None, height=height,
    )  # fmt: skip
    out = {}
    for source in (kalapa, vnondb):
        if source.name not in sources:
            continue
        n = len(source) if limit is None else min(limit, len(source))
        samples = [source.get(i, random.Random(i)) for i in range(n)]
        out[source.name] = ([s.image for s in samples], [s.text for s in samples])
    return out


def score(args: argparse.Namespace) -> None:
    # strokes are rendered at the (first) model's input height, as in its training validation
    config = json.loads((Path(args.models[0]) / "config.json").read_text(encoding="utf-8"))
    data = held_out(Path(args.data_root), args.fold, args.limit, config["preprocess"]["height"], args.sources)
    configs = {Path(m).name: [m] for m in args.models}
    if len(args.models) > 1:
        configs["ensemble"] = list(args.models)
    lm = CharNgramLM.load(args.lm) if args.lm else None  # loaded once for every configuration
    results = {}
    for name, paths in configs.items():
        predictor = Predictor.from_release(
            paths, threads=args.threads, method=args.method, batch_size=16, lm=lm, lm_weight=args.lm_weight
        )
        results[name] = {}
        for source, (images, labels) in data.items():
            start = time.perf_counter()
            preds = predictor.predict(images)
            seconds = time.perf_counter() - start
            metrics = LineMetrics()
            metrics.update([p.text for p in preds], labels)
            results[name][source] = {**metrics.compute(), "seconds": round(seconds, 1)}
            print(
                f"{name:>16} {source:>7}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in results[name][source].items())
            )
    method = predictor.method  # an LM turns greedy into beam
    report = {"fold": args.fold, "method": method, "limit": args.limit, "results": results}
    if lm is not None:
        report.update(lm=str(args.lm), lm_weight=args.lm_weight)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("\n| model | held-out set | lines | CER | WER | line acc. | Kalapa score |")
    print("|---|---|---|---|---|---|---|")
    for name, per_source in results.items():
        for source, m in per_source.items():
            print(
                f"| {name} | {source} fold {args.fold} | {int(m['lines'])} | {100 * m['cer']:.2f} % | "
                f"{100 * m['wer']:.2f} % | {100 * m['line_acc']:.2f} % | {m['kalapa_score']:.4f} |"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("export", help="a training checkpoint -> an fp16 release folder")
    p.add_argument("checkpoint")
    p.add_argument("folder")
    p.add_argument("--notes", default="")
    p.add_argument("--decode-method", default="greedy", choices=["greedy", "beam", "ctc"])
    p.set_defaults(func=export)
    p = sub.add_parser("score", help="score releases and their ensemble on the held-out fold")
    p.add_argument("models", nargs="+")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--data-root", default=str(DEFAULT_DATA))
    p.add_argument(
        "--method", default=None, choices=["greedy", "beam", "ctc"], help="default: the release's own"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="at most this many lines per source")
    p.add_argument("--sources", nargs="+", default=["kalapa", "vnondb"], choices=["kalapa", "vnondb"])
    p.add_argument("--out", default=None, help="write the scores as JSON here")
    p.add_argument(
        "--lm", default=None, help="character LM fused into beam search (greedy then decodes with beam)"
    )
    p.add_argument("--lm-weight", type=float, default=DEFAULT_LM_WEIGHT)
    p.set_defaults(func=score)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
