"""What `src/eval.py` does: decode a labelled set with a checkpoint, and explain its errors.

Outputs, in the run folder: `metrics.json` (overall and per source), `lines.tsv` (every line with its
prediction and edit distance), `errors_by_kind.json` (diacritic-only vs base-letter errors), and
`cer_by_writer_and_length.png` (a chart for a person to look at).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import editdistance
import torch

from vihtr.data.preprocess import Preprocess
from vihtr.models.ocr import OCRModel
from vihtr.text.metrics import LineMetrics, strip_diacritics

log = logging.getLogger(__name__)


def load_model(path: str) -> tuple[OCRModel, Preprocess]:
    """A Lightning checkpoint (.ckpt, averaged or not) or a released model folder."""
    if os.path.isdir(path):
        from vihtr.models.release import load_release

        model, preprocess, _ = load_release(path)
        return model, preprocess
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    hp = ckpt["hyper_parameters"]
    model = OCRModel(**dict(hp["net"]))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval(), Preprocess.from_dict(dict(hp["preprocess"]))


@torch.inference_mode()
def predict_batches(model: OCRModel, batches: Iterable[dict], method: str, beam_size: int) -> list[dict]:
    rows = []
    for batch in batches:
        result = model.decode(batch["images"], batch["widths"], method=method, beam_size=beam_size)
        for pred, text, source, group in zip(
            model.texts(result), batch["texts"], batch["sources"], batch["groups"]
        ):
            rows.append({"source": source, "writer": group, "target": text, "prediction": pred})
    return rows


def summarise(rows: list[dict]) -> dict:
    per_source: dict[str, LineMetrics] = defaultdict(LineMetrics)
    for r in rows:
        per_source[r["source"]].update([r["prediction"]], [r["target"]])
        per_source["all"].update([r["prediction"]], [r["target"]])
    return {source: m.compute() for source, m in sorted(per_source.items())}


def error_kinds(rows: list[dict]) -> dict:
    """Split wrong lines: right letters with wrong marks only, vs base-letter (or spacing) errors."""
    kinds = {"exact": 0, "diacritics_only": 0, "base_letters": 0}
    for r in rows:
        if r["prediction"] == r["target"]:
            kinds["exact"] += 1
        elif strip_diacritics(r["prediction"]) == strip_diacritics(r["target"]):
            kinds["diacritics_only"] += 1
        else:
            kinds["base_letters"] += 1
    return kinds


def write_lines(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["source", "writer", "edits", "target", "prediction"])
        for r in sorted(rows, key=lambda r: -editdistance.eval(r["prediction"], r["target"])):
            edits = editdistance.eval(r["prediction"], r["target"])
            writer.writerow([r["source"], r["writer"], edits, r["target"], r["prediction"]])


def plot_errors(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def cer_by(key) -> dict:
        edits, chars = defaultdict(int), defaultdict(int)
        for r in rows:
            k = key(r)
            edits[k] += editdistance.eval(r["prediction"], r["target"])
            chars[k] += max(len(r["target"]), 1)
        return {k: edits[k] / chars[k] for k in edits}

    by_writer = cer_by(lambda r: f"{r['source']}:{r['writer']}")
    by_length = cer_by(lambda r: min(len(r["target"]) // 10 * 10, 80))
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 4.5))
    writers = sorted(by_writer, key=by_writer.get)
    a.bar(range(len(writers)), [100 * by_writer[w] for w in writers], color="#3b6ea5")
    a.set_title(f"CER per writer ({len(writers)} writers)")
    a.set_ylabel("CER %")
    a.set_xlabel("writer, sorted by CER")
    lengths = sorted(by_length)
    b.bar(
        [f"{n}-{n + 9}" if n < 80 else "80+" for n in lengths],
        [100 * by_length[n] for n in lengths],
        color="#a55b3b",
    )
    b.set_title("CER by label length (characters)")
    b.set_ylabel("CER %")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(
    model: OCRModel, batches: Iterable[dict], out_dir: str, method: str = "greedy", beam_size: int = 4
) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = predict_batches(model, batches, method, beam_size)
    metrics = summarise(rows)
    kinds = error_kinds(rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False))
    (out / "errors_by_kind.json").write_text(json.dumps(kinds, indent=2))
    write_lines(rows, out / "lines.tsv")
    plot_errors(rows, out / "cer_by_writer_and_length.png")
    log.info("metrics: %s", json.dumps(metrics.get("all", {})))
    log.info("errors by kind: %s; details in %s", kinds, out)
    return metrics
