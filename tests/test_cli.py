"""`vihtr predict`, `vihtr export-onnx` and `vihtr release` as a user runs them."""

import csv
import json
import shutil
import subprocess
import sys

import pytest
from inference_helpers import train_tiny_release

from vihtr.cli import build_parser, main


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, real_images):
    return train_tiny_release(tmp_path_factory.getbasetemp() / "tiny-release", real_images)


@pytest.fixture
def folder_with_a_corrupt_file(tmp_path, real_images):
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    for i, (path, _) in enumerate(real_images[:3]):
        shutil.copy(path, folder / ("sub" if i == 2 else "") / f"line{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (folder / "notes.md").write_text("not an image, skipped")
    return folder


def test_predict_folder_to_csv_and_json(tiny_release, folder_with_a_corrupt_file, tmp_path):
    out_csv, out_json = tmp_path / "out.csv", tmp_path / "out.json"
    args = [
        "predict",
        str(folder_with_a_corrupt_file),
        "--models",
        str(tiny_release),
        "-q",
        "--batch-size",
        "2",
    ]
    assert main([*args, "-o", str(out_csv)]) == 0
    assert main([*args, "-o", str(out_json)]) == 0
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert list(rows[0]) == ["path", "text", "confidence", "review", "domain", "error"]
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == [
        "broken.jpg",
        "line0.jpg",
        "line1.jpg",
        "line2.jpg",
    ]
    broken, good = rows[0], rows[1:]
    assert broken["error"] and broken["text"] == ""
    assert all(r["text"] and not r["error"] and 0 <= float(r["confidence"]) <= 1 for r in good)
    records = json.loads(out_json.read_text(encoding="utf-8"))
    assert [r["text"] for r in records] == [r["text"] for r in rows]


def test_predict_a_list_file_to_stdout(tiny_release, folder_with_a_corrupt_file, capsys):
    listing = folder_with_a_corrupt_file / "list.txt"
    listing.write_text("line0.jpg\nsub/line2.jpg\n")
    assert main(["predict", str(listing), "--models", str(tiny_release), "-q"]) == 0
    lines = capsys.readouterr().out.strip().split("\n")
    assert lines[0] == "path\ttext\tconfidence\treview\tdomain\terror" and len(lines) == 3


def test_missing_input_exits_nonzero_with_a_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "vihtr.cli", "predict", str(tmp_path / "nowhere.jpg")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "input not found" in result.stderr and "nowhere.jpg" in result.stderr


def test_subcommands_are_registered():
    parser = build_parser()
    args = parser.parse_args(["export-onnx", "models/x", "-o", "out"])
    assert args.func.__name__ == "run_export_onnx"
    for action in ("export", "score", "calibrate"):
        args = parser.parse_args(["release", action, "m", *(["folder"] if action == "export" else [])])
        assert args.func.__name__ == action and args.func.__module__ == "vihtr.training.lifecycle"
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "a.jpg", "--method", "sideways"])


def test_scores_are_read_on_the_fold_a_release_holds_out(tiny_release, tmp_path):
    from vihtr.models.release import Release
    from vihtr.training.lifecycle import choose_fold

    release = tmp_path / "held-out-1"
    shutil.copytree(tiny_release, release, ignore=shutil.ignore_patterns("onnx"))
    Release(release).update_metadata(held_out_fold=1)
    parser = build_parser()
    args = parser.parse_args(["release", "score", str(release)])
    assert choose_fold(args, args.models) == 1  # no --fold: the release's own
    for action in ("score", "calibrate"):  # a fold it trained on is refused before any line is read
        with pytest.raises(SystemExit, match="fold 0 is not held out by .*held-out-1 \\(holds out fold 1\\)"):
            main(["release", action, str(release), "--fold", "0", "--data-root", str(tmp_path / "none")])


def test_export_onnx_writes_each_of_several_models_into_its_own_folder(tiny_release, tmp_path, capsys):
    for name in ("first", "second"):
        shutil.copytree(tiny_release, tmp_path / name, ignore=shutil.ignore_patterns("onnx"))
    assert (
        main(["export-onnx", str(tmp_path / "first"), str(tmp_path / "second"), "-o", str(tmp_path / "out")])
        == 0
    )
    printed = capsys.readouterr().out.split()
    for name in ("first", "second"):
        graphs = sorted((tmp_path / "out" / name).glob("*.onnx"))
        assert graphs and all(str(g) in printed for g in graphs)
    assert main(["export-onnx", str(tmp_path / "nowhere")]) == 2


def test_16_bit_and_broken_exif_images_read_in_a_folder(tiny_release, real_images, tmp_path):
    """A 16-bit greyscale PNG reads as its 8-bit original; a JPEG whose EXIF Pillow cannot rewrite is read
    (turned upright) instead of ending the run."""
    import numpy as np
    from PIL import Image
    from test_images import BROKEN_EXIF

    folder = tmp_path / "modes"
    folder.mkdir()
    original = Image.open(real_images[0][0]).convert("L")
    original.save(folder / "a-8bit.png")
    Image.fromarray(np.asarray(original).astype(np.uint16) * 257).save(folder / "b-16bit.png")
    # stored turned on its side, with EXIF orientation 6 to turn it back: losslessly (PNG), so it must read
    # exactly as the upright original, and as a JPEG whose EXIF Pillow cannot rewrite (it must not fail)
    sideways = original.transpose(Image.Transpose.ROTATE_90)
    sideways.save(folder / "c-exif.png", exif=BROKEN_EXIF)
    sideways.save(folder / "d-exif.jpg", exif=BROKEN_EXIF, quality=95)
    out = tmp_path / "out.csv"
    assert main(["predict", str(folder), "--models", str(tiny_release), "-q", "-o", str(out)]) == 0
    eight, sixteen, exif, exif_jpeg = list(csv.DictReader(out.open(encoding="utf-8")))
    assert not any(r["error"] for r in (eight, sixteen, exif, exif_jpeg)), (eight, sixteen, exif, exif_jpeg)
    assert sixteen["text"] == eight["text"] and len(eight["text"]) > 5
    assert exif["text"] == eight["text"] and exif["confidence"] == eight["confidence"]
    assert len(exif_jpeg["text"]) > 5


def test_predict_reads_in_the_chosen_domain(real_images, tmp_path, monkeypatch):
    """`--domain` reaches the predictor: the CLI's text is the API's for the same domain (shipped model)."""
    from vihtr.inference.predictor import Predictor
    from vihtr.paths import REPO_ROOT

    model = str(REPO_ROOT / "models" / "vihtr-lite1")
    paths = [str(p) for p, _ in real_images[:3]]
    predictor = Predictor.from_release(model)
    chosen = []
    original = Predictor.from_release.__func__
    monkeypatch.setattr(
        Predictor,
        "from_release",
        classmethod(lambda cls, *a, **kw: chosen.append(kw["domain"]) or original(cls, *a, **kw)),
    )
    for domain in ("general", "prose", "address", "auto"):
        out = tmp_path / f"{domain}.json"
        assert main(["predict", *paths, "--models", model, "--domain", domain, "-q", "-o", str(out)]) == 0
        rows = json.loads(out.read_text(encoding="utf-8"))
        expected = predictor.predict(paths, domain=domain)
        assert [r["text"] for r in rows] == [p.text for p in expected]
        # each row says which domain read it: auto picks address or prose line by line
        assert [r["domain"] for r in rows] == [p.domain for p in expected]
        assert {r["domain"] for r in rows} <= ({"address", "prose"} if domain == "auto" else {domain})
    assert chosen == ["general", "prose", "address", "auto"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["predict", paths[0], "--domain", "poetry"])
