"""Reviewed lines saved as a training set: the store's checks and atomic writes, the server's
`/api/corrections`, `vihtr predict`'s review flag and `vihtr corrections import`; the saved folder is what
training's `LineFolderSource` reads."""

from __future__ import annotations

import io
import json
import os
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from vihtr.data.sources.real import LineFolderSource, read_labels
from vihtr.review.corrections import LABELS, CorrectionError, CorrectionStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "src" / "vihtr" / "app" / "samples"


def png(color: int = 200, size=(90, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_saved_lines_are_a_folder_training_reads(tmp_path):
    store = CorrectionStore(tmp_path / "set")
    decomposed = unicodedata.normalize("NFD", "Xóm Trại  Thuỷ Nguyên ")
    first = store.add(png(10), decomposed)
    second = store.add(png(20), "Số 7 Hải Phòng")
    assert first.text == "Xóm Trại Thuỷ Nguyên" and unicodedata.is_normalized("NFC", first.text)
    assert first.key.startswith("images/") and first.key.endswith(".png") and first.key != second.key
    assert (tmp_path / "set" / first.key).read_bytes() == png(10)  # the image as sent
    source = LineFolderSource(tmp_path / "set", name="corrections")
    assert sorted(zip(source.keys, source.texts)) == sorted(
        [(first.key, "Xóm Trại Thuỷ Nguyên"), (second.key, "Số 7 Hải Phòng")]
    )
    # the same image again: its text is replaced, not duplicated
    again = store.add(png(10), "Xóm Trại")
    assert again.replaced and again.key == first.key and len(store) == 2
    assert store.rows()[first.key] == "Xóm Trại"


@pytest.mark.parametrize(
    "text, message",
    [("abc ☃", "SNOWMAN"), ("   ", "empty"), ("x" * 301, "at most 300")],
)
def test_a_text_the_model_cannot_learn_is_refused_with_its_reason(tmp_path, text, message):
    store = CorrectionStore(tmp_path)
    with pytest.raises(CorrectionError, match=message):
        store.add(png(), text)
    assert len(store) == 0 and not list((tmp_path / "images").iterdir())


def test_what_is_not_an_image_or_is_too_big_is_refused(tmp_path):
    store = CorrectionStore(tmp_path, max_image_bytes=2_000, max_pixels=50_000)
    for data, status in ((b"", 400), (b"%PDF-1.4 not an image", 400), (png(size=(400, 400)), 413)):
        with pytest.raises(CorrectionError) as raised:
            store.add(data, "Hà Nội")
        assert raised.value.status == status
    big = io.BytesIO()
    Image.frombytes("L", (100, 100), os.urandom(10_000)).save(big, format="PNG")  # noise: no compression
    with pytest.raises(CorrectionError, match="bytes is over the limit"):
        store.add(big.getvalue(), "Hà Nội")


def test_the_folder_stops_at_its_line_limit(tmp_path):
    store = CorrectionStore(tmp_path, max_lines=2)
    store.add(png(1), "một")
    store.add(png(2), "hai")
    with pytest.raises(CorrectionError, match="limit of 2 lines") as raised:
        store.add(png(3), "ba")
    assert raised.value.status == 507
    assert store.add(png(1), "một lần nữa").replaced  # a line already in the set can still be corrected


def test_a_failed_write_loses_nothing_already_saved(tmp_path, monkeypatch):
    store = CorrectionStore(tmp_path)
    store.add(png(1), "một")
    before = (tmp_path / LABELS).read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vihtr.review.corrections.os.replace", disk_full)
    with pytest.raises(OSError):
        store.add(png(2), "hai")
    assert (tmp_path / LABELS).read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_the_server_saves_reviewed_lines_only_when_told_where(tmp_path):
    from test_app import call_json, multipart

    from vihtr.app.server import create_app
    from vihtr.app.serving import start_in_thread

    sample = (SAMPLES / "sample-01.png").read_bytes()
    off = start_in_thread(create_app(predictor=object()))
    try:
        body, content_type = multipart([("image", "a.png", sample)], {"text": "Hà Nội"})
        status, answer = call_json(f"{off.url}/api/corrections", "POST", body, content_type)
        assert status == 404 and "--corrections-dir" in answer["error"]
        assert call_json(f"{off.url}/health")[1]["corrections"] is False
    finally:
        off.stop()

    folder = tmp_path / "corrections"
    on = start_in_thread(create_app(predictor=object(), corrections_dir=folder))
    try:
        assert call_json(f"{on.url}/health")[1]["corrections"] is True
        body, content_type = multipart(
            [("image", "../../etc/passwd", sample)], {"text": "Xóm Trại Thuỷ Nguyên"}
        )
        status, answer = call_json(f"{on.url}/api/corrections", "POST", body, content_type)
        assert status == 200, answer
        assert answer["lines"] == 1 and answer["text"] == "Xóm Trại Thuỷ Nguyên" and not answer["replaced"]
        assert (folder / answer["saved"]).read_bytes() == sample  # under the folder, a name of its own
        body, content_type = multipart([("image", "a.png", sample)], {"text": "Hà Nội ☃"})
        status, answer = call_json(f"{on.url}/api/corrections", "POST", body, content_type)
        assert status == 400 and "SNOWMAN" in answer["error"]
        body, content_type = multipart([("image", "a.png", b"not an image")], {"text": "Hà Nội"})
        assert call_json(f"{on.url}/api/corrections", "POST", body, content_type)[0] == 400
        body, content_type = multipart([("image", "a.png", sample)], {})
        status, answer = call_json(f"{on.url}/api/corrections", "POST", body, content_type)
        assert status == 400 and "text" in answer["error"]
        assert len(LineFolderSource(folder, name="corrections").keys) == 1
    finally:
        on.stop()


def test_predict_flags_lines_to_check_and_a_corrected_table_imports(tmp_path, capsys):
    from vihtr.cli import main

    images = sorted(SAMPLES.glob("*.png"))[:3]
    table = tmp_path / "out.tsv"
    assert main(["predict", *map(str, images), "--models", str(REPO_ROOT / "models" / "vihtr-lite1"),
                 "-q", "-o", str(table)]) == 0  # fmt: skip
    import csv

    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    review_below = json.loads((REPO_ROOT / "models" / "vihtr-lite1" / "config.json").read_text())["metadata"][
        "calibration"
    ]["review_below"]
    for row in rows:
        assert row["review"] == str(float(row["confidence"]) < review_below)
    # the user fixes one text by hand and breaks another
    rows[0]["text"] = "Xóm Trại Thuỷ Nguyên Hải Phòng"
    rows[1]["text"] = "Hà Nội ☃"
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    folder = tmp_path / "set"
    assert main(["corrections", "import", str(table), "-o", str(folder)]) == 1  # one row refused
    err = capsys.readouterr().err
    assert "row 3" in err and "SNOWMAN" in err and "2 line(s) saved" in err
    source = LineFolderSource(folder, name="corrections")
    assert sorted(source.texts) == sorted([rows[0]["text"], rows[2]["text"]])

    # the page's export: only the rows a person checked, images found beside the table
    export = tmp_path / "vihtr-lines.json"
    export.write_text(json.dumps([
        {"name": str(images[0]), "text": "Xóm Trại", "status": "corrected"},
        {"name": str(images[1]), "text": "whatever", "status": "unreviewed"},
    ]), encoding="utf-8")  # fmt: skip
    assert main(["corrections", "import", str(export), "-o", str(folder)]) == 0
    assert "1 line(s) saved (1 replaced" in capsys.readouterr().err
    assert "Xóm Trại" in LineFolderSource(folder, name="corrections").texts


def test_a_saved_folder_trains(tmp_path):
    """The folder the page and `vihtr corrections import` write is a source training reads as it is: a
    fast_dev_run on it, every line trained and validated on (`fold=all`: a corrections folder is one group)."""
    import math

    from training_helpers import TINY, compose_config

    from vihtr.data.sources.real import read_labels
    from vihtr.training.run import train

    fixtures = REPO_ROOT / "tests" / "fixtures" / "lines"
    store = CorrectionStore(tmp_path / "corrections")
    for rel, text in read_labels(fixtures / "labels.tsv")[:8]:
        store.add((fixtures / rel).read_bytes(), text)
    overrides = [*TINY, "debug=fdr", f"data.sources.kalapa.root={store.root}", "fold=all"]
    metrics = train(compose_config("train", overrides, tmp_path / "run"))
    assert math.isfinite(metrics["train/loss"]) and metrics["train/loss"] > 0
    assert math.isfinite(metrics["val/kalapa/cer"])


def test_the_adaptation_recipe_trains_on_reviewed_lines_and_keeps_the_norm_statistics(tmp_path):
    """`experiment=adapt` from the shipped default on a saved folder (split into train.tsv and held_out.tsv)
    with synthetic replay: a training step and a validation on the held-out lines; no batch norm moves its
    running statistics, and the CNN's first stages keep their weights."""
    import math

    import torch
    from training_helpers import RecordRun, compose_config

    from vihtr.data.sources.real import read_labels
    from vihtr.training.run import train

    fixtures = REPO_ROOT / "tests" / "fixtures" / "lines"
    rows = read_labels(fixtures / "labels.tsv")
    adapt_dir = tmp_path / "adapt"
    adapt_dir.mkdir()
    for name, part in (("train.tsv", rows[:6]), ("held_out.tsv", rows[6:9])):
        (adapt_dir / name).write_text("".join(f"{fixtures / r}\t{t}\n" for r, t in part), encoding="utf-8")
    release = REPO_ROOT / "models" / "vihtr-lite1" / "weights.pt"
    overrides = [
        "experiment=adapt",
        f"adapt_dir={adapt_dir}",
        f"model.init_from={release}",
        "debug=fdr",
        "logger=[csv]",
        f"+callbacks.record._target_={RecordRun.__module__}.RecordRun",
        f"+callbacks.record.dirpath={tmp_path / 'record'}",
        "callbacks.model_checkpoint=null",
    ]
    metrics = train(compose_config("train", overrides, tmp_path / "run"))
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/mine/cer"])
    (record,) = RecordRun.read(tmp_path / "record")
    assert record["end_step"] == 1
    before = torch.load(tmp_path / "record" / "initial_weights-rank0.pt", weights_only=True)  # the release's
    after = torch.load(tmp_path / "record" / "final_weights-rank0.pt", weights_only=True)
    trained = [k for k in before if k.startswith(("ctc_head", "encoder.layers", "encoder.proj"))]
    assert any(not torch.equal(before[k].float(), after[k].float()) for k in trained)  # it did learn
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.allclose(before[k].float(), after[k].float(), atol=1e-3) for k in stats)
    stem = [k for k in before if k.startswith("encoder.backbone.conv_stem")]
    assert stem and all(torch.equal(before[k].float(), after[k].float()) for k in stem)


def test_vihtr_adapt_writes_a_release_that_reads_and_a_report(tmp_path, capsys):
    """`vihtr adapt` end to end on the fixture lines (two steps): the release it writes loads and reads, its
    report holds the held-out CER before and after, and it is the adapted model only if that reads better."""
    import torch

    from vihtr.cli import main
    from vihtr.inference.predictor import Predictor
    from vihtr.review.adapt import REPORT, AdaptError, adapt

    fixtures = REPO_ROOT / "tests" / "fixtures" / "lines"
    base = REPO_ROOT / "models" / "vihtr-lite1"
    out = tmp_path / "my-forms"
    report = adapt([fixtures], base, out, steps=2, held_out=0.25, overrides=["trainer.val_check_interval=1"])
    assert report.lines == report.trained_on + report.held_out and report.held_out >= 2
    assert report.improved == (report.cer_after < report.cer_before)
    assert json.loads((out / REPORT).read_text())["cer_after"] == report.cer_after
    same = torch.equal(
        torch.load(out / "weights.pt", weights_only=True)["ctc_head.out.weight"],
        torch.load(base / "weights.pt", weights_only=True)["ctc_head.out.weight"],
    )
    assert same != report.improved  # the adapted weights only where they read the held-out lines better
    metadata = json.loads((out / "config.json").read_text())["metadata"]
    assert (
        metadata["calibration"] == json.loads((base / "config.json").read_text())["metadata"]["calibration"]
    )
    prediction = Predictor.from_release(out).predict([str(next(fixtures.rglob("*.jpg")))])[0]
    assert prediction.text and not prediction.error

    with pytest.raises(AdaptError, match="too little data: 3"):
        small = tmp_path / "small"
        small.mkdir()
        (small / "labels.tsv").write_text(
            "".join(f"{fixtures / r}\t{t}\n" for r, t in read_labels(fixtures / "labels.tsv")[:3]),
            encoding="utf-8",
        )
        adapt([small], base, tmp_path / "never")
    assert main(["adapt", str(tmp_path / "small"), "--model", str(base), "--out", str(tmp_path / "x")]) == 2
    assert "too little data" in capsys.readouterr().err
    assert main(["adapt", str(fixtures), "--model", str(base), "--out", str(base)]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_adapt_refuses_labels_whose_images_are_missing(tmp_path):
    from vihtr.review.adapt import AdaptError, checked_lines

    fixtures = REPO_ROOT / "tests" / "fixtures" / "lines"
    rows = read_labels(fixtures / "labels.tsv")
    folder = tmp_path / "checked"
    folder.mkdir()
    listed = [f"{fixtures / r}\t{t}\n" for r, t in rows] + [
        "gone/1.jpg\tmột dòng\n",
        "gone/2.jpg\thai dòng\n",
    ]
    (folder / "labels.tsv").write_text("".join(listed), encoding="utf-8")
    with pytest.raises(AdaptError, match=r"2 image\(s\) listed in the labels are missing: .*gone/1.jpg"):
        checked_lines([folder])
    (folder / "labels.tsv").write_text("".join(listed[:-2]), encoding="utf-8")
    assert len(checked_lines([folder])) == len(rows)
