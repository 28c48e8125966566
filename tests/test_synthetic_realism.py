"""Issue 9: form paper from real crops, the `form` renderer style, and the real-vs-synthetic classifier."""

import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from vihtr.data.synthetic import paper as paper_module
from vihtr.data.synthetic import render
from vihtr.data.synthetic.fonts import FORM_FONTS, V1_FONTS, font_names
from vihtr.data.synthetic.paper import PAPER_HEIGHT, PaperBank, clean_paper
from vihtr.data.synthetic.realism import RealismClassifier, to_grey_line, window
from vihtr.data.synthetic.render import LineRenderer

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A real-data root holding the fixture Kalapa lines, with the paper cache in tmp_path."""
    monkeypatch.setenv("VIHTR_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(FIXTURES / "lines", tmp_path / "data" / "kalapa2023")
    return tmp_path / "data"


def _form_crop() -> np.ndarray:
    """A phone-photo-like form box: bluish paper, ruled top/bottom borders and an end border, blue ink."""
    h, w = 120, 1200
    crop = np.empty((h, w, 3), np.uint8)
    crop[:] = (205, 210, 225)
    cv2.line(crop, (0, 6), (w - 1, 6), (90, 90, 90), 2)
    cv2.line(crop, (0, h - 8), (w - 1, h - 8), (90, 90, 90), 2)
    cv2.line(crop, (1000, 0), (1000, h - 1), (90, 90, 90), 2)
    cv2.putText(
        crop, "Thon 8 Hoa Binh", (20, 85), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (30, 40, 120), 4, cv2.LINE_AA
    )
    return crop


def test_clean_paper_removes_the_handwriting_and_keeps_the_box():
    crop = _form_crop()
    paper = clean_paper(crop)
    assert paper.image.shape == (PAPER_HEIGHT, 640, 3)
    grey = paper.image.mean(axis=2)
    text_area = grey[16:-16, 5:520]  # where the writing was, between the borders
    assert text_area.min() > 190, "handwriting left on the paper"
    scale = PAPER_HEIGHT / 120
    assert grey[round(6 * scale)].mean() < 150  # top border kept
    assert grey[:, round(1000 * scale)].mean() < 150  # end border kept
    assert paper.ink[2] > paper.ink[0] + 30  # blue ink recognised as blue


def test_the_pen_is_the_handwriting_colour_not_the_printed_borders():
    crop = _form_crop()
    for y in (6, 112):  # black printed borders, darker than the blue ballpoint
        cv2.line(crop, (0, y), (1199, y), (15, 15, 15), 3)
    ink = clean_paper(crop).ink
    assert ink[2] > ink[0] + 30 and sum(ink) > 3 * 30


def test_cleaned_paper_keeps_the_level_of_the_paper_around_the_writing():
    """The writing's place is filled from the paper around it: a closing alone fills it with the brightest
    grain nearby, a light patch a classifier sees (issue 9)."""
    crop = _form_crop()
    grain = np.random.default_rng(0).normal(0, 8, crop.shape[:2])
    crop = np.clip(crop + grain[..., None], 0, 255).astype(np.uint8)
    grey = clean_paper(crop).image.mean(axis=2)
    scale = PAPER_HEIGHT / 120
    written = grey[round(40 * scale) : round(85 * scale), round(30 * scale) : round(500 * scale)]
    blank = grey[round(40 * scale) : round(85 * scale), round(560 * scale) : round(980 * scale)]
    assert abs(written.mean() - blank.mean()) < 4


def test_paper_is_cut_to_the_line_not_squeezed():
    """A wide crop is cut (its left part and its end border), a narrow one stretched, at the line's height."""
    paper = np.full((PAPER_HEIGHT, 800, 3), 220, np.uint8)
    paper[:, 720:723] = 40  # the box's end border, at 90 % of its width
    paper[:, 100:102] = 90  # a mark that squeezing would move
    cut = render._fit_paper(paper, 300, 48)
    assert cut.shape == (48, 300, 3)
    columns = cut.mean(axis=(0, 2))
    assert columns[74:77].min() < 120  # the mark at its own scale (100 x 48 / 64 = 75)
    assert columns[-70:].min() < 80  # the end border kept
    assert render._fit_paper(paper, 900, 48).shape == (48, 900, 3)


def test_form_lines_are_as_wide_per_character_as_the_real_ones(root):
    """Real Kalapa lines are 16-24 px per character at 48 px (quartiles, scripts/realism.py): a short address
    is not drawn on a whole crop's width, nor a long one squeezed."""
    renderer = LineRenderer(height=(48, 64), paper=PaperBank(root, held_out_fold=0))
    for text in ("Ấp 3 Hà Nội", "Số 12 Thôn Kiện Khê Xã Thanh Liêm Huyện Thanh Liêm Tỉnh Hà Nam"):
        ratios = []
        for seed in range(8):
            image = renderer.render(text, random.Random(seed))
            ratios.append(image.width * 48 / image.height / len(text))
        assert 12 < np.median(ratios) < 30, (text, ratios)


def test_paper_bank_never_draws_a_held_out_writers_crop(root, tmp_path):
    from vihtr.data.sources.real import LineFolderSource

    held_out = LineFolderSource(root / "kalapa2023", fold=0, split="val")
    training = LineFolderSource(root / "kalapa2023", fold=0, split="train")
    assert len(held_out) and len(training)
    bank = PaperBank(root, held_out_fold=0)
    assert {Path(p).relative_to(root / "kalapa2023").as_posix() for p in bank.paths} == set(training.keys)
    assert len(PaperBank(root, held_out_fold=None)) == len(training) + len(held_out)
    paper = bank.sample(random.Random(0))
    assert paper.image.shape[0] == PAPER_HEIGHT and paper.image.dtype == np.uint8
    assert list((tmp_path / "cache" / "paper").rglob("*.npz"))  # cleaned once, kept on disk
    assert PaperBank.maybe(tmp_path / "nowhere") is None  # no real data: procedural paper


def test_form_style_lays_the_ink_on_real_paper(root):
    renderer = LineRenderer(height=(48, 64), paper=PaperBank(root, held_out_fold=0))
    for seed in range(5):
        image = renderer.render("Thôn 8 Hoà Bình", random.Random(seed))
        assert 48 <= image.height <= 64 and image.width > 4 * image.height
        grey = np.asarray(image.convert("L"))
        assert grey.min() < 120 < np.median(grey)
    assert np.array_equal(
        np.asarray(renderer.render("Ấp 3", random.Random(1))),
        np.asarray(renderer.render("Ấp 3", random.Random(1))),
    )


def test_styles_choose_their_fonts():
    assert LineRenderer(style="v1")._fonts == list(V1_FONTS)
    assert LineRenderer()._fonts == list(FORM_FONTS)
    assert set(FORM_FONTS) < set(font_names()) and set(V1_FONTS) < set(font_names())
    with pytest.raises(ValueError, match="style"):
        LineRenderer(style="fancy")


def test_a_struck_out_word_is_written_again_but_not_labelled(monkeypatch):
    """The struck copy adds ink (about one word's width); the label is the text as given."""
    text = "Nguyễn Trãi Hà Nội"
    renderer = LineRenderer(jitter=0.0, slant=0.0, fonts=["patrick-hand"])
    widths = {}
    for prob in (0.0, 1.0):
        monkeypatch.setattr(render, "STRIKE_PROB", prob)
        widths[prob] = renderer._ink_mask(text, random.Random(5))[0].shape[1]
    shortest_word = min(render.glyph("patrick-hand", 36, c).advance for c in "Hà")
    assert widths[1.0] > widths[0.0] + 2 * shortest_word
    from vihtr.data.synthetic.sources import AddressSource

    source = AddressSource(size=3, augment=False, data_root="/nonexistent")
    assert source.get(1, random.Random(0)).text == source.text(1)


def test_realism_classifier_separates_what_differs_and_not_what_does_not():
    rng = np.random.default_rng(0)

    def lines(n, dark):
        out = []
        for _ in range(n):
            line = np.full((48, 200), 220, np.uint8)
            line += rng.integers(0, 10, line.shape, dtype=np.uint8)
            if dark:
                line[10:38:4, :] = 40  # a ruled pattern only one class has
            out.append(line)
        return out

    different = RealismClassifier(epochs=4, batch_size=8, width=96).fit(lines(48, True), lines(48, False))
    assert different.score(lines(32, True), lines(32, False)).accuracy > 0.9
    same = RealismClassifier(epochs=4, batch_size=8, width=96).fit(lines(48, False), lines(48, False))
    assert 0.25 <= same.score(lines(32, False), lines(32, False)).accuracy <= 0.75


def test_classifier_windows_hide_the_line_length():
    from PIL import Image

    line = to_grey_line(Image.new("RGB", (300, 100), "white"))
    assert line.shape == (48, 144)
    assert window(line, random.Random(0)).shape == (48, 384)
    assert window(np.zeros((48, 2000), np.uint8), random.Random(0)).shape == (48, 384)


def test_paper_cache_is_keyed_by_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VIHTR_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "crop.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(_form_crop(), cv2.COLOR_RGB2BGR))
    paper_module._load_paper.cache_clear()
    first = paper_module._load_paper(str(path))
    paper_module._load_paper.cache_clear()
    again = paper_module._load_paper(str(path))  # from the disk cache
    assert np.array_equal(first.image, again.image) and first.ink == again.ink
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        paper_module._load_paper(str(tmp_path / "bad.jpg"))
