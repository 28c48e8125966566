"""Adapt a release to a user's own checked lines (`vihtr adapt`): fine-tune it on a CPU in minutes, check the
result on lines it did not train on, and write a release every command can load.

    vihtr adapt corrections/ --model models/vihtr-lite1 --out models/my-forms

The recipe is `conf/experiment/adapt.yaml` (what `src/train.py experiment=adapt` runs): every batch norm
keeps its statistics, the CNN's stem and first stages keep their weights, a small constant learning rate,
and the package's own synthetic lines as replay in every batch so the model keeps what it knew. A share of
the lines (`held_out`) is kept out of training: the checkpoint that reads them best is kept, and it is
released only if it reads them better than the model it started from (else the release is that model, and
the report says so). The release keeps its base's calibration and decoding; `adapt_report.json` beside it
holds the CER before and after on the held-out lines, the steps and the time.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vihtr.data.sources.real import read_labels

MIN_LINES = 8  # fewer cannot both teach and check
REPORT = "adapt_report.json"


class AdaptError(ValueError):
    pass


@dataclass
class AdaptReport:
    base: str
    lines: int
    trained_on: int
    held_out: int
    steps: int
    seconds: float
    cer_before: float  # on the held-out lines, plain reading
    cer_after: float
    improved: bool  # False: the release written is the base model


def checked_lines(folders: list[str | os.PathLike]) -> list[tuple[str, str]]:
    """(absolute image path, text) of every line in the folders' `labels.tsv` (or the TSV files named). An
    image a table lists but that is not there is an error: a checked line is never dropped unsaid."""
    lines, missing = [], []
    for folder in folders:
        labels = Path(folder)
        if labels.is_dir():
            labels = labels / "labels.tsv"
        if not labels.is_file():
            raise AdaptError(f"no labels.tsv in {folder}: give folders written by `vihtr corrections import` or "
                             "`vihtr serve --corrections-dir`, or a labels.tsv of your own")  # fmt: skip
        for rel, text in read_labels(labels):
            image = Path(rel) if Path(rel).is_absolute() else labels.parent / rel
            if image.is_file():
                lines.append((str(image.resolve()), text))
            else:
                missing.append(str(image))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise AdaptError(
            f"{len(missing)} image(s) listed in the labels are missing: {shown}. Restore them, or remove their "
            "rows from labels.tsv"
        )
    return lines


def split_lines(lines: list, held_out: float, seed: int) -> tuple[list, list]:
    """A seeded split: at least two held-out lines, at least `MIN_LINES - 2` to train on."""
    if len(lines) < MIN_LINES:
        raise AdaptError(
            f"too little data: {len(lines)} checked line(s); adaptation needs at least {MIN_LINES} "
            "(review more lines first)"
        )
    order = list(lines)
    random.Random(seed).shuffle(order)
    n = min(max(2, round(held_out * len(order))), len(order) - (MIN_LINES - 2))
    return order[n:], order[:n]


def write_tsv(path: Path, lines: list[tuple[str, str]]) -> None:
    path.write_text("".join(f"{image}\t{text}\n" for image, text in lines), encoding="utf-8")


def line_cer(
    release: str | os.PathLike,
    lines: list[tuple[str, str]],
    domain: str = "general",
    threads: int | None = None,
) -> float:
    """CER of a release on `lines` (image path, text) read in `domain` (`general`: the network alone)."""
    from vihtr.inference.predictor import Predictor
    from vihtr.text.metrics import LineMetrics

    predictor = Predictor.from_release(release, threads=threads, domain=domain)
    metrics = LineMetrics()
    metrics.update([p.text for p in predictor.predict([image for image, _ in lines])], [t for _, t in lines])
    return metrics.compute()["cer"]


def adapt(
    folders: list[str | os.PathLike],
    base: str | os.PathLike,
    out: str | os.PathLike,
    steps: int = 150,
    held_out: float = 0.2,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    threads: int | None = 2,
    keep_worse: bool = False,
) -> AdaptReport:
    """Fine-tune the release `base` on the checked lines of `folders`; write the release `out` and its report.
    `overrides`: more Hydra overrides of `experiment=adapt` (tests make it small). `keep_worse`: release the
    adapted weights even when they do not read the held-out lines better (to measure the recipe itself)."""
    import tempfile

    from vihtr.models.release import Release, save_release
    from vihtr.training.config import compose_config
    from vihtr.training.evaluate import load_model
    from vihtr.training.run import train

    base, out = Path(base), Path(out)
    release = Release(base)
    if not release.weights_path.is_file():
        raise AdaptError(f"no released model at {base} (a folder with weights.pt and config.json)")
    if out.resolve() == base.resolve():
        raise AdaptError("--out must be a new folder: the base release is never overwritten")
    train_lines, check_lines = split_lines(checked_lines(folders), held_out, seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        work = Path(tmp)
        write_tsv(work / "train.tsv", train_lines)
        write_tsv(work / "held_out.tsv", check_lines)
        every = max(1, min(30, steps // 4))
        cfg = compose_config(
            "train",
            [
                "experiment=adapt",
                f"adapt_dir={work}",
                f"model.init_from={release.weights_path}",
                f"trainer.max_steps={steps}",
                f"trainer.val_check_interval={every}",
                f"seed={seed}",
                f"torch_threads={threads or 'null'}",
                "callbacks.progress_bar=null",
                "trainer.enable_progress_bar=false",
                *(overrides or []),
            ],
            output_dir=work / "run",
        )
        train(cfg)
        checkpoints = sorted((work / "run" / "checkpoints").glob("*.ckpt"))
        model, preprocess = load_model(str(checkpoints[-1])) if checkpoints else load_model(str(base))
        metadata = release.metadata
        metadata = {k: v for k, v in metadata.items() if k not in ("schedule", "source_checkpoint")}
        metadata["notes"] = (
            f"{base.name} adapted on {len(train_lines)} checked lines ({steps} steps, vihtr adapt)"
        )
        metadata["adapted_from"] = base.name
        candidate = work / "candidate"
        save_release(model, candidate, preprocess, metadata)
        seconds = time.perf_counter() - start
        before = line_cer(base, check_lines, threads=threads)
        after = line_cer(candidate, check_lines, threads=threads)
        improved = after < before
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(
            candidate if improved or keep_worse else base, out, ignore=shutil.ignore_patterns("onnx")
        )
    report = AdaptReport(
        base=base.name,
        lines=len(train_lines) + len(check_lines),
        trained_on=len(train_lines),
        held_out=len(check_lines),
        steps=steps,
        seconds=round(seconds, 1),
        cer_before=round(before, 4),
        cer_after=round(after, 4),
        improved=improved,
    )
    (out / REPORT).write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")
    return report
