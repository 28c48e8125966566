"""One way to evaluate a model on labelled lines, for every caller: `src/eval.py`, `scripts/release.py
score` and `calibrate`.

The lines are the data config's validation lines (the same selection, seeds and rendering as training
validation; `data.val_size_per_source=null` for a whole fold) or a `labels.tsv`. A `Predictor` reads them,
so a release is scored exactly as users read with it (its decoding method and domain), and a training
checkpoint as training validation decoded it (`OCRSystem.decode_batch` uses the same width buckets).

Reports, in the run folder: `metrics.json` (overall and per source), `lines.tsv` (every line with its
prediction and edit distance), `errors_by_kind.json` (diacritic-only vs base-letter errors), and
`cer_by_writer_and_length.png` (per source: CER per writer and by label length).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from pathlib import Path

import editdistance
import hydra
import torch
from omegaconf import DictConfig, open_dict

from vihtr.data.datamodule import LineDataModule
from vihtr.data.preprocess import Preprocess
from vihtr.data.sources.base import Sample
from vihtr.data.sources.real import LineFolderSource
from vihtr.inference.answers import prediction_json
from vihtr.inference.predictor import Predictor
from vihtr.models.ocr import OCRModel
from vihtr.models.release import Release, network_state
from vihtr.text.charset import longest_label
from vihtr.text.metrics import LineMetrics, strip_diacritics

log = logging.getLogger(__name__)


def load_model(path: str) -> tuple[OCRModel, Preprocess]:
    """A Lightning checkpoint (.ckpt, averaged or not) or a released model folder."""
    if os.path.isdir(path):
        model, preprocess, _ = Release(path).load()
        return model, preprocess
    return model_from_checkpoint(torch.load(path, map_location="cpu", weights_only=False))


def model_from_checkpoint(ckpt: dict) -> tuple[OCRModel, Preprocess]:
    hp = ckpt["hyper_parameters"]
    model = OCRModel(**dict(hp["net"]))
    model.load_state_dict(network_state(ckpt["state_dict"]))
    return model.eval(), Preprocess.from_dict(dict(hp["preprocess"]))


def load_predictor(
    path: str,
    method: str | None = None,
    domain: str | None = None,
    beam_size: int = 4,
    batch_size: int = 16,
    threads: int | None = None,
) -> Predictor:
    """A released model folder, read as users read with it (`method`/`domain` None: the release's own), or a
    training checkpoint, read as its validation read it (its `val_decode`, the general domain)."""
    if os.path.isdir(path):
        return Predictor.from_release(
            path, method=method, domain=domain, beam_size=beam_size, batch_size=batch_size, threads=threads
        )
    if threads:
        torch.set_num_threads(threads)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # read once: it may hold optimizer state
    model, preprocess = model_from_checkpoint(ckpt)
    return Predictor.from_models(
        [model],
        [preprocess],
        method or ckpt["hyper_parameters"].get("val_decode", "greedy"),
        beam_size=beam_size,
        batch_size=batch_size,
        domain=domain or "general",
    )


def compose_eval_config(overrides: list[str]) -> DictConfig:
    """`conf/eval.yaml` with `overrides`, for scripts outside `@hydra.main` (its output dir is not set)."""
    from hydra import compose, initialize_config_dir

    from vihtr.training.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("eval", overrides=overrides)


def evaluation_lines(cfg: DictConfig, predictor: Predictor) -> list[Sample]:
    """The labelled lines an eval config names, prepared for `predictor`'s model (its input height).

    A `labels_tsv` is read in full (no folds); otherwise the data config's validation lines: the same
    selection (`data.val_size_per_source`), seeds and rendering as training validation."""
    longest = longest_label(predictor.decoder.max_len)  # the lines training skips are skipped
    with open_dict(cfg):
        cfg.image = predictor.preprocesses[0].to_dict()  # the model's input size, whatever the config says
        cfg.data.max_label_length = longest
    charset = predictor.charset.chars
    if cfg.get("labels_tsv"):
        labels = Path(cfg.labels_tsv)
        source = LineFolderSource(
            labels.parent,
            name=labels.parent.name,
            labels=labels.name,
            tone_style=cfg.tone_style,
            charset=charset,
            fold=None,
            load_height=cfg.image.height,
        )
        datamodule = LineDataModule(
            train_sources={},
            val_sources={source.name: source},
            charset=charset,
            preprocess=cfg.image,
            val_size_per_source=None,
            max_label_length=longest,
            seed=cfg.seed,
        )
    else:
        with open_dict(cfg):
            cfg.data.train_sources = {}  # only the validation lines are read
        datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("validate")
    return [datamodule.val_set.sample(k) for k in range(len(datamodule.val_set))]


def read_lines(predictor: Predictor, lines: list[Sample], domain: str | None = None) -> list[dict]:
    """One row per line: its source, writer and target, then its reading as the CLI and the API give it
    (`text`, `confidence`, `domain`...)."""
    preds = predictor.predict([line.image for line in lines], domain=domain)
    return [
        {"source": line.source, "writer": line.group, "target": line.text, **prediction_json(p)}
        for line, p in zip(lines, preds, strict=True)
    ]


def summarise(rows: list[dict]) -> dict:
    per_source: dict[str, LineMetrics] = defaultdict(LineMetrics)
    for r in rows:
        per_source[r["source"]].update([r["text"]], [r["target"]])
        per_source["all"].update([r["text"]], [r["target"]])
    return {source: m.compute() for source, m in sorted(per_source.items())}


def error_kinds(rows: list[dict]) -> dict:
    """Split wrong lines: right letters with wrong marks only, vs base-letter (or spacing) errors."""
    kinds = {"exact": 0, "diacritics_only": 0, "base_letters": 0}
    for r in rows:
        if r["text"] == r["target"]:
            kinds["exact"] += 1
        elif strip_diacritics(r["text"]) == strip_diacritics(r["target"]):
            kinds["diacritics_only"] += 1
        else:
            kinds["base_letters"] += 1
    return kinds


def write_lines(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["source", "writer", "edits", "target", "prediction"])
        for r in sorted(rows, key=lambda r: -editdistance.eval(r["text"], r["target"])):
            edits = editdistance.eval(r["text"], r["target"])
            writer.writerow([r["source"], r["writer"], edits, r["target"], r["text"]])


def plot_errors(rows: list[dict], path: Path) -> None:
    """One row of two charts per source (writers of different datasets are not comparable): CER per writer,
    sorted, and CER by label length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def cer_by(rows, key) -> dict:
        edits, chars = defaultdict(int), defaultdict(int)
        for r in rows:
            k = key(r)
            edits[k] += editdistance.eval(r["text"], r["target"])
            chars[k] += max(len(r["target"]), 1)
        return {k: edits[k] / chars[k] for k in edits}

    sources = sorted({r["source"] for r in rows})
    fig, axes = plt.subplots(len(sources), 2, figsize=(14, 4.5 * len(sources)), squeeze=False)
    for (a, b), source in zip(axes, sources):
        mine = [r for r in rows if r["source"] == source]
        overall = sum(editdistance.eval(r["text"], r["target"]) for r in mine) / max(
            sum(len(r["target"]) for r in mine), 1
        )
        by_writer = cer_by(mine, lambda r: r["writer"])
        by_length = cer_by(mine, lambda r: min(len(r["target"]) // 10 * 10, 80))
        writers = sorted(by_writer, key=by_writer.get)
        a.bar(range(len(writers)), [100 * by_writer[w] for w in writers], color="#3b6ea5")
        a.axhline(
            100 * overall, color="black", linewidth=1, linestyle="--", label=f"all: {100 * overall:.1f} %"
        )
        a.set_title(f"{source}: CER per writer ({len(writers)} writers, {len(mine)} lines)")
        a.set_ylabel("CER %")
        a.set_xlabel("writer, sorted by CER")
        a.legend(loc="upper left")
        lengths = sorted(by_length)
        b.bar(
            [f"{n}-{n + 9}" if n < 80 else "80+" for n in lengths],
            [100 * by_length[n] for n in lengths],
            color="#a55b3b",
        )
        b.set_title(f"{source}: CER by label length (characters)")
        b.set_ylabel("CER %")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(predictor: Predictor, lines: list[Sample], out_dir: str, domain: str | None = None) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_lines(predictor, lines, domain)
    metrics = summarise(rows)
    kinds = error_kinds(rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    (out / "errors_by_kind.json").write_text(json.dumps(kinds, indent=2))
    write_lines(rows, out / "lines.tsv")
    plot_errors(rows, out / "cer_by_writer_and_length.png")
    log.info("metrics (%s, %s domain): %s", predictor.method, domain or predictor.domain, json.dumps(metrics))
    log.info("errors by kind: %s; details in %s", kinds, out)
    return metrics
