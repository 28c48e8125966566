"""A release's lifecycle: `vihtr release export|score|calibrate` (`scripts/release.py` is the same command).

    # export a training checkpoint (averaged or not) as an fp16 release with its config, charset, preprocessing
    vihtr release export <run>/checkpoints/averaged.ckpt models/vihtr-lite1 --notes "data, steps, hardware"
    # score releases (each alone, and together as an ensemble) on the held-out writer fold
    vihtr release score models/vihtr-lite1 models/extra/vihtr-lite1-tf --fold 0 --out models/scores.json
    # fit the release's confidence calibration on the held-out fold (stored in its config.json) and report
    # the expected calibration error (writer-split cross-fit), a reliability plot and review thresholds
    vihtr release calibrate models/vihtr-lite1 --plot models/vihtr-lite1/reliability.png
    # each decoding domain (plain reading vs the address LM + unit check), on the same lines
    vihtr release score models/vihtr-lite1 --domains general address

Held-out data: the Kalapa lines of writer fold `--fold` and the VNOnDB lines of the same fold (writer-disjoint
from the training folds): the validation lines of `conf/eval.yaml` in full, rendered with the same seed per
line as training validation and `src/eval.py`, and read by the same code (`vihtr.training.evaluate`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from vihtr.inference.domains import DOMAINS
from vihtr.models.decoding import DECODE_METHODS, default_method
from vihtr.paths import REPO_ROOT, data_root

if TYPE_CHECKING:  # the training stack is imported when a step runs, not when the CLI starts
    from vihtr.data.sources.base import Sample
    from vihtr.inference.predictor import Predictor

REPO = REPO_ROOT
SOURCES = ("kalapa", "vnondb")


def portable_path(path: str | Path) -> str:
    """A path as the release may record it: relative to the repository, or only the run's own part."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(Path(*path.parts[-3:]))  # <run>/checkpoints/<file>: no machine's directories


def read_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint's contents, or {} for a release folder (which records its own steps)."""
    if Path(path).is_dir():
        return {}
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def schedule_position(checkpoint: dict) -> dict | None:
    """Where a checkpoint of a long schedule stands in it (`model.scheduler.total_steps` set): the run it
    belongs to (`run`, the experiment that planned it), its shape, length and the step reached, which a machine
    without the run's state continues from when it trains the same run (train_continue.sh)."""
    scheduler = (checkpoint.get("hyper_parameters") or {}).get("scheduler") or {}
    if not scheduler.get("total_steps"):
        return None
    return {
        **({"run": scheduler["run"]} if scheduler.get("run") else {}),
        "name": scheduler.get("name"),
        "total_steps": int(scheduler["total_steps"]),
        "step": int(scheduler.get("start_step") or 0) + int(checkpoint.get("global_step", 0)),
    }


def export(args: argparse.Namespace) -> int:
    """One checkpoint, or the mean of several of one run (the seed's last-k averaging: a long run keeps its
    most recent checkpoints, and a release averages them)."""
    from vihtr.models.release import average_checkpoints, save_release
    from vihtr.training.evaluate import load_model, model_from_checkpoint

    last = args.checkpoint[-1]
    checkpoint = read_checkpoint(last)
    model, preprocess = model_from_checkpoint(checkpoint) if checkpoint else load_model(last)
    if len(args.checkpoint) > 1:
        model.load_state_dict(average_checkpoints(args.checkpoint))
    n_params = sum(p.numel() for p in model.parameters())
    metadata = {
        "source_checkpoint": ", ".join(portable_path(c) for c in args.checkpoint),
        "parameters": n_params,
        # the steps of the run that wrote the checkpoint; a release continued from another adds that one's
        # (its config's trained_steps) by hand, and a long schedule's position is `schedule`
        "trained_steps": int(checkpoint.get("global_step", 0)) if checkpoint else None,
        "schedule": schedule_position(checkpoint),
        "notes": args.notes,
        # what Predictor(method=None) uses: the held-out best, else the model's own (ctc for a CTC-only model)
        "decode_method": args.decode_method or default_method(model.decoder is not None),
        "domain": args.domain,  # what Predictor(domain=None) reads lines as
        "held_out_fold": args.held_out_fold,  # what score and calibrate read by default, and refuse to leave
    }
    folder = save_release(model, args.folder, preprocess, metadata)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    print(f"wrote {folder} ({n_params / 1e6:.1f} M parameters, {size:.1f} MB)")
    return 0


def choose_fold(args: argparse.Namespace, models: list[str]) -> int:
    """The fold to read: `--fold`, else the one the releases hold out (0 when they record none). A fold a
    release was trained on is refused: its figures would not be held-out figures."""
    from vihtr.models.release import Release

    recorded = {path: Release(path).held_out_fold for path in models}
    known = sorted(set(recorded.values()) - {None})
    fold = args.fold if args.fold is not None else (known[0] if known else 0)
    trained = [
        f"{path} (holds out fold {held})" for path, held in recorded.items() if held not in (None, fold)
    ]
    if trained:
        raise SystemExit(f"error: fold {fold} is not held out by {', '.join(trained)}: choose --fold")
    args.fold = fold
    return fold


def held_out(args: argparse.Namespace, predictor: Predictor) -> dict[str, list[Sample]]:
    """Source name -> the held-out lines of fold `--fold`: the validation lines of `conf/eval.yaml`, read by
    the same code as `src/eval.py` and training validation (whole sources, or a seeded `--limit` of each),
    prepared for the predictor's (first) model."""
    from vihtr.training.evaluate import compose_eval_config, evaluation_lines

    overrides = [
        f"fold={args.fold}",
        f"paths.data_root={Path(args.data_root).resolve()}",
        f"data.val_size_per_source={args.limit or 'null'}",
        *(f"data.val_sources.{name}=null" for name in SOURCES if name not in args.sources),
    ]
    by_source: dict[str, list[Sample]] = {}
    for line in evaluation_lines(compose_eval_config(overrides), predictor):
        by_source.setdefault(line.source, []).append(line)
    return by_source


def score(args: argparse.Namespace) -> int:
    from vihtr.inference.predictor import Predictor
    from vihtr.training.evaluate import read_lines, summarise

    if args.ensemble_only and len(args.models) < 2:
        raise SystemExit("--ensemble-only needs two or more models")
    choose_fold(args, args.models)
    configs = {} if args.ensemble_only else {Path(m).name: [m] for m in args.models}
    if len(args.models) > 1:
        configs["ensemble"] = list(args.models)
    results, data = {}, None
    for name, paths in configs.items():
        predictor = Predictor.from_release(paths, threads=args.threads, method=args.method, batch_size=16)
        data = data or held_out(args, predictor)  # prepared once, for the first model's input height
        for domain in args.domains or [predictor.domain]:
            key = f"{name} ({domain})"
            results[key] = {}
            for source, lines in data.items():
                start = time.perf_counter()
                rows = read_lines(predictor, lines, domain)
                seconds = time.perf_counter() - start
                results[key][source] = {**summarise(rows)[source], "seconds": round(seconds, 1)}
                print(
                    f"{key:>24} {source:>7}: "
                    + ", ".join(f"{k} {v:.4f}" for k, v in results[key][source].items())
                )
    report = {"fold": args.fold, "method": predictor.method, "limit": args.limit, "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("\n| model (domain) | held-out set | lines | CER | WER | line acc. | Kalapa score | s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, per_source in results.items():
        for source, m in per_source.items():
            print(
                f"| {name} | {source} fold {args.fold} | {int(m['lines'])} | {100 * m['cer']:.2f} % | "
                f"{100 * m['wer']:.2f} % | {100 * m['line_acc']:.2f} % | {m['kalapa_score']:.4f} | "
                f"{m['seconds']:.0f} |"
            )
    return 0


def calibrate(args: argparse.Namespace) -> int:
    """Fit `metadata.calibration` of one release on its held-out fold; report ECE and review thresholds.

    The ECE and the threshold table are cross-fitted: writers are split in two halves, each half's lines
    are calibrated by the map fitted on the other half, so no line is scored by a map that saw it. The
    stored map is then fitted on all lines."""
    import editdistance
    import numpy as np

    from vihtr.inference.calibration import (
        cross_fitted_calibration,
        expected_calibration_error,
        review_table,
        with_review_threshold,
    )
    from vihtr.inference.predictor import Predictor
    from vihtr.models.release import Release
    from vihtr.training.evaluate import read_lines

    release = Release(args.model)
    choose_fold(args, [args.model])
    predictor = Predictor.from_release(args.model, threads=args.threads, batch_size=16, domain=args.domain)
    predictor.calibration = None  # the raw confidences are what is fitted
    data = held_out(args, predictor)
    raw, accuracy, exact, half, sources = [], [], [], [], []
    for source, lines in data.items():
        for row in read_lines(predictor, lines):
            label = row["target"]
            raw.append(row["confidence"])
            accuracy.append(max(0.0, 1 - editdistance.eval(row["text"], label) / max(1, len(label))))
            exact.append(row["text"] == label)
            half.append(f"{source}/{row['writer']}")
            sources.append(source)
    try:
        final, crossed, ece_raw, ece = cross_fitted_calibration(raw, accuracy, half)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    bins = expected_calibration_error(crossed, accuracy)[1]
    thresholds = [round(t, 2) for t in np.arange(0.1, 1.0, 0.05)]
    table = review_table(crossed, accuracy, exact, thresholds)
    final = with_review_threshold(final, table, args.target_accuracy)
    review_below = final.review_below
    summary = {
        **final.to_dict(),
        "fold": args.fold,
        "lines": len(raw),
        "ece_raw": round(ece_raw, 4),
        "ece": round(ece, 4),
        "target_accuracy": args.target_accuracy,
    }
    release.update_metadata(calibration=summary)
    print(
        f"{len(raw)} held-out lines ({', '.join(f'{s}: {sources.count(s)}' for s in data)}), fold {args.fold}"
    )
    print(
        f"expected calibration error: raw {100 * ece_raw:.1f} points, calibrated (cross-fitted) {100 * ece:.1f}"
    )
    print("\n| confidence | lines | mean confidence | mean character accuracy |\n|---|---|---|---|")
    for row in bins:
        print(f"| {row['bin']} | {row['lines']} | {row['confidence']:.3f} | {row['accuracy']:.3f} |")
    print("\n| review below | lines to review | accepted: character accuracy | accepted: lines exact |")
    print("|---|---|---|---|")
    for row in table:
        print(
            f"| {row['threshold']:.2f} | {100 * row['review_share']:.1f} % | "
            f"{100 * row['accepted_char_accuracy']:.2f} % | {100 * row['accepted_line_accuracy']:.1f} % |"
        )
    if review_below is None:
        print(f"\nno threshold reaches {args.target_accuracy:.0%} character accuracy on the accepted lines")
    print(
        f"stored in {release.config_path}: review_below = {review_below} (target {args.target_accuracy:.0%})"
    )
    if args.plot:
        plot_reliability(raw, crossed, accuracy, args.plot)
        print(f"reliability plot: {args.plot}")
    return 0


def plot_reliability(raw, calibrated, accuracy, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vihtr.inference.calibration import expected_calibration_error

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for values, label in ((raw, "raw (geometric mean)"), (calibrated, "calibrated (cross-fitted)")):
        ece, bins = expected_calibration_error(values, accuracy)
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{label}, ECE {ece:.3f}",
        )
    ax.set_xlabel("line confidence")
    ax.set_ylabel("character accuracy of the line (held out)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def add_parser(subparsers) -> None:
    """`vihtr release export|score|calibrate`."""
    parser = subparsers.add_parser(
        "release",
        help="make a release from training checkpoints, score it on the held-out fold, calibrate its confidence",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser(
        "export", help="a training checkpoint (or the mean of several) -> an fp16 release folder"
    )
    p.add_argument(
        "checkpoint", nargs="+", help="one checkpoint, or several of one run to average (in step order)"
    )
    p.add_argument("folder")
    p.add_argument("--notes", default="")
    p.add_argument("--decode-method", default=None, choices=DECODE_METHODS, help="default: the model's own")
    p.add_argument(
        "--domain", default="general", choices=DOMAINS, help="the domain lines are read in by default"
    )
    p.add_argument(
        "--held-out-fold",
        type=int,
        default=None,
        help="the writer fold the training run never saw (its --fold)",
    )
    p.set_defaults(func=export)
    p = sub.add_parser("score", help="score releases and their ensemble on the held-out fold")
    p.add_argument("models", nargs="+")
    p.add_argument("--fold", type=int, default=None, help="default: the fold the releases hold out, else 0")
    p.add_argument("--data-root", default=str(data_root()))
    p.add_argument("--method", default=None, choices=DECODE_METHODS, help="default: the release's own")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of this many lines per source")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--out", default=None, help="write the scores as JSON here")
    p.add_argument("--ensemble-only", action="store_true", help="score the models' ensemble, not each model")
    p.add_argument(
        "--domains",
        nargs="+",
        default=None,
        choices=DOMAINS,
        help="decoding domains (default: the release's)",
    )
    p.set_defaults(func=score)
    p = sub.add_parser("calibrate", help="fit a release's line-confidence calibration on the held-out fold")
    p.add_argument("model")
    p.add_argument("--fold", type=int, default=None, help="default: the fold the release holds out, else 0")
    p.add_argument("--data-root", default=str(data_root()))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of this many lines per source")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument(
        "--target-accuracy", type=float, default=0.95, help="character accuracy the accepted lines must reach"
    )
    p.add_argument("--plot", default=None, help="write the reliability plot (PNG) here")
    p.add_argument("--domain", default=None, choices=DOMAINS, help="default: the release's")
    p.set_defaults(func=calibrate)
