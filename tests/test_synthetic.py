"""Synthetic lines: renderer, augmentation, text generators, sources and the make_data script."""

import importlib.util
import random
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vihtr.data.augment import LineAugment
from vihtr.data.synthetic.address import AddressGenerator
from vihtr.data.synthetic.corpus import word_list
from vihtr.data.synthetic.render import LineRenderer
from vihtr.data.synthetic.sources import AddressSource, CorpusSource, RealLabelSource, WordSource
from vihtr.text.charset import Charset

ADDRESS = "452/8d Thôn Thu Cúc Thuỵ Hưng Thái Thuỵ Thái Bình"
HAMLET_WORDS = {"Thôn", "Ấp", "Tổ", "Xóm", "Khu", "Tdp", "Kp", "Khóm", "Bản"}


def _same(a, b) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def test_renderer_is_seeded_and_keeps_to_its_height_range():
    renderer = LineRenderer(height=(40, 60))
    first = renderer.render(ADDRESS, random.Random(3))
    assert _same(first, renderer.render(ADDRESS, random.Random(3)))
    assert not _same(first, renderer.render(ADDRESS, random.Random(4)))
    for seed in range(20):
        image = renderer.render(ADDRESS, random.Random(seed))
        assert image.mode == "RGB" and 40 <= image.height <= 61 and image.width > 3 * image.height
        pixels = np.asarray(image.convert("L"))
        assert pixels.min() < 140 < np.median(pixels)  # dark ink on light paper
    assert renderer.render("", random.Random(0)).height >= 40  # a blank line renders too


def test_renderer_keeps_every_mark_inside_the_image():
    """The ink never touches the top or bottom border, where a cut tone mark or descender would be."""
    renderer = LineRenderer(height=(48, 48), padding=(0.05, 0.05), form_line_prob=0.0)
    for seed in range(10):
        gray = np.asarray(renderer.render("Ấp Ỷ Ỵên Quỹ", random.Random(seed)).convert("L")).astype(int)
        ink = gray < gray.max() - 60
        assert not ink[0].any() and not ink[-1].any()


def test_augment_strength_zero_is_identity_and_seeded_otherwise():
    image = LineRenderer().render(ADDRESS, random.Random(0))
    assert LineAugment(0.0)(image, random.Random(1)) is image
    augment = LineAugment(1.0)
    out = augment(image, random.Random(1))
    assert out.mode == "RGB" and _same(out, augment(image, random.Random(1)))
    assert any(not _same(image, augment(image, random.Random(s))) for s in range(5))
    with pytest.raises(ValueError):
        LineAugment(1.5)


def _stats(lines: list[str]) -> dict[str, float]:
    n = len(lines)
    return {
        "mean_words": statistics.mean(len(t.split()) for t in lines),
        "digit_start": sum(t[0].isdigit() for t in lines) / n,
        "hamlet_start": sum(t.split()[0] in HAMLET_WORDS for t in lines) / n,
        "Tp": sum("Tp" in t.split() for t in lines) / n,
        "Thôn": sum("Thôn" in t.split() for t in lines) / n,
        "comma": sum("," in t for t in lines) / n,
    }


def test_hand_augmentation_is_off_by_default_and_changes_the_hand_when_on():
    image = Image.fromarray(np.full((48, 300, 3), 230, np.uint8))
    ImageDraw.Draw(image).line([(20, 24), (280, 24)], fill=(20, 20, 80), width=2)
    plain, default = LineAugment(0.5, hand=0.0), LineAugment(0.5)
    assert all(_same(plain(image, random.Random(s)), default(image, random.Random(s))) for s in range(5))
    hand = LineAugment(0.0, hand=1.0)
    widths = {hand(image, random.Random(s)).width for s in range(20)}
    assert len(widths) > 2 and min(widths) < 300 < max(widths)  # letters drawn narrower and wider
    with pytest.raises(ValueError, match="hand"):
        LineAugment(0.5, hand=1.5)


def test_addresses_look_like_the_real_labels(data_root):
    real = [row.split("\t")[1] for row in (data_root / "kalapa2023" / "labels.tsv").read_text().splitlines()]
    generator, rng = AddressGenerator(), random.Random(0)
    synthetic = [generator.generate(rng) for _ in range(3000)]
    got, want = _stats(synthetic), _stats(real)
    assert abs(got["mean_words"] - want["mean_words"]) < 1.0, (got, want)
    for key, tolerance in (("digit_start", 0.04), ("hamlet_start", 0.06), ("Tp", 0.04), ("Thôn", 0.04)):
        assert abs(got[key] - want[key]) < tolerance, (key, got, want)
    assert got["comma"] < 0.1
    charset = Charset()
    assert all(t in charset for t in synthetic)
    # old tone style dominates as in the labels, the new one occurs
    assert sum("Hoà" in t for t in synthetic) > 3 * sum("Hòa" in t for t in synthetic) > 0


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(
        "Hôm nay trời đẹp quá, chúng tôi đi học.\nMột dòng có ký tự lạ ☃ bị bỏ\n  khoẻ   mạnh  \n"
    )
    return path


def _sources(corpus_file):
    small = {"size": 30, "seed": 7}
    return [
        AddressSource(tone_style="old", **small),
        CorpusSource(corpus_files=[corpus_file], tone_style="new", **small),
        WordSource(**small),
    ]


def test_sources_are_deterministic_and_inside_the_charset(corpus_file):
    charset = Charset()
    for source in _sources(corpus_file):
        assert len(source) == 30
        texts = [source.text(i) for i in range(30)]
        assert all(t and t in charset for t in texts)
        assert len(set(texts)) > 1
        a, b = source.get(5, random.Random(11)), source.get(5, random.Random(11))
        assert a.text == b.text == texts[5] and a.source == source.name and _same(a.image, b.image)
        assert not _same(a.image, source.get(5, random.Random(12)).image)  # a new rendering each epoch
        other_seed = type(source)(
            size=30, seed=8, **({"corpus_files": [corpus_file]} if "corpus" in source.name else {})
        )
        assert [other_seed.text(i) for i in range(30)] != texts
        with pytest.raises(IndexError):
            source.text(30)


def test_corpus_windows_and_tone_style(corpus_file):
    source = CorpusSource(corpus_files=[corpus_file], size=50, tone_style="old", augment=False)
    texts = {source.text(i) for i in range(50)}
    assert not any("☃" in t or "lạ" in t for t in texts)  # the line outside the charset is left out
    assert "khoẻ mạnh" in texts or "khoẻ" in texts  # whitespace collapsed, old tone style
    assert all(t in "Hôm nay trời đẹp quá, chúng tôi đi học." or "khoẻ" in t for t in texts)


def test_word_source_uses_vendored_words():
    vocabulary = {w.lower() for w in word_list()}
    assert len(vocabulary) > 20_000
    source = WordSource(size=20, capitalize_prob=0.0, augment=False)
    for i in range(20):
        text = source.text(i)
        assert any(text.startswith(w) for w in vocabulary)


def test_real_label_source_rerenders_every_label(data_root):
    source = RealLabelSource(labels_file=data_root / "kalapa2023" / "labels.tsv", augment=False)
    assert len(source) == 2160
    assert source.text(0) == source.labels[0] and source.get(1, random.Random(0)).text == source.labels[1]


def _load_make_data():
    path = Path(__file__).resolve().parents[1] / "scripts" / "make_data.py"
    spec = importlib.util.spec_from_file_location("make_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_data_writes_resumes_and_repeats(tmp_path, corpus_file):
    config = tmp_path / "make_data.yaml"
    config.write_text(
        "seed: 3\nout_dir: unused\nsources:\n"
        "  synth_corpus:\n    _target_: vihtr.data.synthetic.sources.CorpusSource\n    size: 6\n"
        f"    corpus_files: ['{corpus_file}']\n"
        "  synth_words:\n    _target_: vihtr.data.synthetic.sources.WordSource\n    size: 6\n"
    )
    make_data = _load_make_data()
    out = tmp_path / "synth"
    make_data.main(["--config", str(config), "--out", str(out), "--sources", "synth_corpus"])
    folder = out / "synth_corpus"
    rows = (folder / "labels.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 6 and not (out / "synth_words").exists()
    assert all((folder / row.split("\t")[0]).is_file() for row in rows)
    assert (folder / "contact_sheet.png").is_file()
    images = sorted((folder / "images").iterdir())
    before = {p.name: p.read_bytes() for p in images}
    images[2].unlink()  # an interrupted run: one image missing
    mtime = images[0].stat().st_mtime_ns
    make_data.main(["--config", str(config), "--out", str(out), "--sources", "synth_corpus"])
    assert {p.name: p.read_bytes() for p in (folder / "images").iterdir()} == before  # same output, same seed
    assert images[0].stat().st_mtime_ns == mtime  # existing images were skipped
    assert (folder / "labels.tsv").read_text(encoding="utf-8").splitlines() == rows


def test_default_corpora_leave_out_the_held_out_writers(tmp_path, monkeypatch):
    """Synthetic lines never show the text of the writers every score holds out (fold 0): the default
    corpus files and re-rendered labels hold only the other writers' lines; `held_out_fold=None` all."""
    import shutil
    import tarfile

    from vihtr.data.sources.inkml import InkMLSource
    from vihtr.data.sources.real import LineFolderSource
    from vihtr.data.synthetic import corpus

    fixtures = Path(__file__).parent / "fixtures"
    root = tmp_path / "data"
    shutil.copytree(fixtures / "lines", root / "kalapa2023")
    (root / "vnondb").mkdir()
    with tarfile.open(root / "vnondb" / "InkData_line.tar.xz", "w:xz") as tar:
        for f in sorted((fixtures / "inkml").glob("*.inkml")):
            tar.add(f, arcname=f.name)
    monkeypatch.setenv("VIHTR_DATA_ROOT", str(root))
    monkeypatch.setattr(corpus, "DEFAULT_CACHE_DIR", tmp_path / "cache")

    kalapa = {s: LineFolderSource(root / "kalapa2023", fold=0, split=s) for s in ("train", "val")}
    archive = root / "vnondb" / "InkData_line.tar.xz"
    vnondb = {s: InkMLSource(archive, cache_dir=tmp_path / "ink", fold=0, split=s) for s in ("train", "val")}
    assert all(len(s) for s in [*kalapa.values(), *vnondb.values()])  # both folds have writers here

    def keys(path):
        return {line.split("\t")[0] for line in Path(path).read_text(encoding="utf-8").splitlines()}

    kalapa_file, vnondb_file = corpus.default_corpus_files(root)
    assert keys(kalapa_file) == set(kalapa["train"].keys)
    assert keys(vnondb_file) == set(vnondb["train"].keys)
    everything = corpus.default_corpus_files(root, held_out_fold=None)
    assert len(corpus.read_corpus(everything[0])) == len(kalapa["train"]) + len(kalapa["val"])

    held_out_only = set(kalapa["val"].texts) - set(kalapa["train"].texts)
    relabelled = RealLabelSource(augment=False)
    assert held_out_only and not held_out_only & set(relabelled.labels)
    assert held_out_only <= set(RealLabelSource(held_out_fold=None, augment=False).labels)
    assert len(CorpusSource(size=10, augment=False).generator.lines) == len(kalapa["train"]) + len(
        vnondb["train"]
    )


def test_make_data_shows_real_and_synthetic_lines_side_by_side(tmp_path, data_root):
    from PIL import Image

    config = tmp_path / "make_data.yaml"
    config.write_text(
        "seed: 0\nout_dir: unused\nsources:\n"
        "  synth_address:\n    _target_: vihtr.data.synthetic.sources.AddressSource\n    size: 3\n"
    )
    out = tmp_path / "synth"
    _load_make_data().main(["--config", str(config), "--out", str(out)])
    sheet = Image.open(out / "real_vs_synthetic.png")
    assert sheet.height == 6 * (64 + 4)  # 3 real and 3 synthetic rows
