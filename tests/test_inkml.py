"""InkML parsing (HANDS-VNOnDB line format) and on-the-fly rendering."""

import random
from dataclasses import replace
from pathlib import Path

import numpy as np

from vihtr.data.sources.inkml import InkMLSource, extract_archive, parse_inkml

FIXTURE = Path(__file__).parent / "fixtures" / "inkml"


def test_parse_lines_texts_writer_and_points():
    lines = parse_inkml(FIXTURE / "writer_a.inkml")
    assert [line.key for line in lines] == [
        "writer_a.inkml#0",
        "writer_a.inkml#1",
    ]  # the inkless group is left out
    first = lines[0]
    assert first.text == 'Hòa "bình" & an' and first.writer == "id_A"
    # 4 strokes with points (the empty trace dropped), the one-point dot kept
    assert first.stroke_ends.tolist() == [7, 12, 13, 18]
    assert first.points.shape == (18, 2) and first.points[12].tolist() == [300, 340]
    namespaced = parse_inkml(FIXTURE / "writer_b.inkml")  # InkML namespace, x y t points
    assert namespaced[0].writer == "id_B" and namespaced[0].points[:, 1].tolist() == [10, 90, 10, 90, 40]


def test_source_normalises_labels_and_splits_by_writer():
    src = InkMLSource(FIXTURE, tone_style="old", height=32)
    assert len(src) == 10 and len(set(src.groups)) == 5
    assert src.texts[src.keys.index("writer_a.inkml#0")] == 'Hoà "bình" & an'
    assert src.texts[src.keys.index("writer_a.inkml#1")] == "chữ viết"
    train = InkMLSource(FIXTURE, fold=0, split="train")
    val = InkMLSource(FIXTURE, fold=0, split="val")
    assert len(train) + len(val) == 10 and not set(train.groups) & set(val.groups)


def test_rendering_is_deterministic_for_a_fixed_rng_and_varies_otherwise():
    src = InkMLSource(FIXTURE, height=40)
    a = np.asarray(src.get(0, random.Random(7)).image)
    b = np.asarray(src.get(0, random.Random(7)).image)
    c = np.asarray(src.get(0, random.Random(8)).image)
    assert a.shape[0] == 40 and a.shape[2] == 3
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    # dark ink drawn on light paper, within the canvas
    gray = a.mean(axis=2)
    assert np.median(gray) > 150 and gray.min() < 110


def test_stray_points_do_not_shrink_the_line():
    src = InkMLSource(FIXTURE, height=64)
    # a dense handwriting-like zigzag of 600 points (real lines have thousands), 3000 units wide, 300 high
    x = np.linspace(0, 3000, 600)
    points = np.stack([x, 150 + 150 * np.sin(x / 40)], axis=1).astype(np.float32)
    src.lines[0] = replace(src.lines[0], points=points, stroke_ends=np.array([600]))
    normal = src.get(0, random.Random(1)).image
    # plus a stray tap far above the line
    points = np.concatenate([points, [[300, -20000]]]).astype(np.float32)
    src.lines[0] = replace(src.lines[0], points=points, stroke_ends=np.array([600, 601]))
    strayed = src.get(0, random.Random(1)).image
    assert normal.width > 300 and strayed.width == normal.width


def test_archive_is_extracted_once(tmp_path):
    import tarfile

    archive = tmp_path / "InkData_line.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(FIXTURE, arcname="InkData_line")
    folder = extract_archive(archive, tmp_path / "cache")
    assert sorted(p.name for p in folder.glob("*.inkml"))[0] == "writer_a.inkml"
    stamp = (folder / "writer_a.inkml").stat().st_mtime_ns
    assert extract_archive(archive, tmp_path / "cache") == folder
    assert (folder / "writer_a.inkml").stat().st_mtime_ns == stamp
    assert len(InkMLSource(archive, cache_dir=tmp_path / "cache")) == 10


def test_packed_strokes_read_back_as_parsed_and_render_the_same(tmp_path):
    from vihtr.data.sources.inkml import inkml_lines, load_packed, save_packed

    lines = inkml_lines(FIXTURE)
    exact, rounded = tmp_path / "exact.npz.xz", tmp_path / "rounded.npz.xz"
    save_packed(lines, exact)
    save_packed(lines, rounded, unit=4)
    for line, back in zip(lines, load_packed(exact), strict=True):
        assert (back.key, back.text, back.writer) == (line.key, line.text, line.writer)
        assert (
            np.array_equal(back.points, line.points)
            and back.stroke_ends.tolist() == line.stroke_ends.tolist()
        )
    for line, back in zip(lines, load_packed(rounded), strict=True):
        assert np.abs(back.points - line.points).max() <= 2 and back.points.dtype == np.float32
    # a source reads the packed file like the folder: same lines, folds and renderings
    folder, packed = InkMLSource(FIXTURE, fold=0, split="train"), InkMLSource(exact, fold=0, split="train")
    assert packed.keys == folder.keys and packed.texts == folder.texts
    assert np.array_equal(
        np.asarray(packed.get(1, random.Random(3)).image), np.asarray(folder.get(1, random.Random(3)).image)
    )


def test_packing_refuses_what_it_cannot_keep(tmp_path):
    import pytest

    from vihtr.data.sources.inkml import save_packed

    lines = parse_inkml(FIXTURE / "writer_a.inkml")
    with pytest.raises(ValueError, match="npz.xz"):
        save_packed(lines, tmp_path / "strokes.npz")
    far = replace(lines[0], points=np.array([[0, 0], [40000, 0]], np.float32), stroke_ends=np.array([2]))
    with pytest.raises(ValueError, match="int16"):
        save_packed([far], tmp_path / "strokes.npz.xz")
