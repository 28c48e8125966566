"""LineFolderSource: labels, tone style, writer groups, folds, unknown characters, missing and corrupt images."""

import random
import shutil
from pathlib import Path

import pytest

from vihtr.data.sources.real import LineFolderSource

FIXTURE = Path(__file__).parent / "fixtures" / "lines"


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "lines"
    shutil.copytree(FIXTURE, root)
    return root


def test_reads_labels_with_tone_style_and_writer_groups():
    src = LineFolderSource(FIXTURE, name="fixture", tone_style="new")
    assert len(src) == 10 and set(src.groups) == {f"images/w{i}" for i in range(1, 6)}
    sample = src.get(src.keys.index("images/w1/0.jpg"), random.Random(0))
    assert sample.text == "Hòa Bình" and sample.source == "fixture" and sample.group == "images/w1"
    assert sample.image.mode == "RGB" and sample.image.height == 44
    by_pattern = LineFolderSource(FIXTURE, group_pattern=r"images/w(\d)/")
    assert set(by_pattern.groups) == {"1", "2", "3", "4", "5"}


def test_fold_split_keeps_writers_apart():
    train = LineFolderSource(FIXTURE, fold=1, split="train")
    val = LineFolderSource(FIXTURE, fold=1, split="val")
    assert len(train) + len(val) == 10 and len(val) == 2
    assert not set(train.groups) & set(val.groups)


def test_unknown_characters_are_reported_and_excluded(folder):
    with open(folder / "labels.tsv", "a", encoding="utf-8") as f:
        f.write("images/w1/0.jpg\tHoà Bình 字\nimages/w2/0.jpg\tgiá €5\n")
    src = LineFolderSource(folder, name="kalapa")
    assert len(src) == 10 and not any("字" in t or "€" in t for t in src.texts)
    assert src.unknown_report.labels["kalapa"] == 2
    assert src.unknown_report.counts == {"字": 1, "€": 1}


def test_missing_and_corrupt_images_are_skipped_and_counted(folder):
    (folder / "images/w3/1.jpg").unlink()
    good = (folder / "images/w2/0.jpg").read_bytes()
    (folder / "images/w2/1.jpg").write_bytes(good[: len(good) // 3])  # a truncated jpg
    for load_height in (None, 32):
        src = LineFolderSource(folder, load_height=load_height)
        assert len(src) == 9 and src.missing_images == 1
        bad = src.keys.index("images/w2/1.jpg")
        sample = src.get(bad, random.Random(0))
        assert src.bad_images == 1
        assert sample.text == src.texts[(bad + 1) % len(src)]  # the next line, image and label together


def test_load_height_shrinks_large_jpegs_but_not_below_it(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    Image.new("RGB", (1600, 160), "white").save(tmp_path / "a/big.jpg")
    (tmp_path / "labels.tsv").write_text("a/big.jpg\tx\n", encoding="utf-8")
    assert LineFolderSource(tmp_path, load_height=64).get(0, random.Random()).image.size == (800, 80)
    assert LineFolderSource(tmp_path).get(0, random.Random()).image.size == (1600, 160)


def test_write_labels_keeps_only_the_chosen_fold(tmp_path):
    from vihtr.data.sources.real import read_labels, write_labels

    train = LineFolderSource(FIXTURE, fold=4, split="train")
    path = write_labels(train, tmp_path / "labels" / "train.tsv")
    assert read_labels(path) == list(zip(train.keys, train.texts)) and len(train) == 8
