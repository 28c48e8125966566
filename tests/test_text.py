"""Charset, normalisation, tone-mark style and metrics."""

import unicodedata

import pytest

from vihtr.text import VIETNAMESE_CHARSET, Charset, UnknownCharReport, normalize_text
from vihtr.text.charset import EOS, SOS, UnknownCharacterError
from vihtr.text.metrics import LineMetrics, kalapa_score, strip_diacritics
from vihtr.text.normalize import to_new_tone_style, to_old_tone_style

VOWELS = "aăâeêioôơuưy"


def test_charset_has_every_vietnamese_letter_in_nfc():
    letters = [c for c in VIETNAMESE_CHARSET if c.isalpha() and not c.isascii()]
    assert all(unicodedata.is_normalized("NFC", c) for c in VIETNAMESE_CHARSET)
    # 12 vowels x 6 tones, less the 6 plain ASCII vowels, plus đ: 67 letters per case
    assert len(letters) == 134
    for vowel in VOWELS:
        for mark in ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"):
            letter = unicodedata.normalize("NFC", vowel + mark)
            assert letter in VIETNAMESE_CHARSET and letter.upper() in VIETNAMESE_CHARSET
    assert "đ" in VIETNAMESE_CHARSET and "Đ" in VIETNAMESE_CHARSET


def test_round_trip_and_special_tokens():
    charset = Charset()
    text = "452/8d Hoàng Văn Thụ, P 6 (Phú Nhuận) Tp Hồ Chí Minh?"
    ids = charset.encode(text)
    assert ids[0] == SOS and ids[-1] == EOS
    assert charset.decode(ids[1:]) == text


def test_unknown_character_raises_and_is_reported():
    charset = Charset()
    with pytest.raises(UnknownCharacterError, match="€"):
        charset.encode("giá 5€")
    report = UnknownCharReport()
    report.add("kalapa", "giá 5€", charset.unknown("giá 5€"))
    assert report and report.labels["kalapa"] == 1 and report.counts["€"] == 1
    assert "giá 5€" in report.summary()


def test_normalize_nfc_and_whitespace():
    decomposed = unicodedata.normalize("NFD", "  Thành   phố\tHuế ")
    assert normalize_text(decomposed) == "Thành phố Huế"


@pytest.mark.parametrize(
    ("new", "old"),
    [("Hòa", "Hoà"), ("Thủy", "Thuỷ"), ("khỏe", "khoẻ"), ("Thanh Hóa", "Thanh Hoá"), ("hòa,", "hoà,")],
)
def test_tone_style_converts_both_ways(new, old):
    assert to_old_tone_style(new) == old
    assert to_new_tone_style(old) == new
    assert normalize_text(new, "old") == old and normalize_text(old, "new") == new


@pytest.mark.parametrize("word", ["hoàng", "thuyền", "Quý", "quỳnh", "Nguyễn", "Hà Nội"])
def test_tone_style_leaves_other_syllables_alone(word):
    assert to_old_tone_style(word) == word and to_new_tone_style(word) == word


def test_bad_tone_style_is_an_error():
    with pytest.raises(ValueError, match="tone_style"):
        normalize_text("x", "newest")


def test_metrics():
    assert kalapa_score("abc", "abc") == 1.0
    assert kalapa_score("abd", "abcd") == pytest.approx(1 - 1.5 / 4)
    assert kalapa_score("", "ab") == 0.0
    assert strip_diacritics("Đường Hoà") == "Duong Hoa"
    m = LineMetrics()
    m.update(["Hoà Bình", "Tp Huế"], ["Hòa Bình", "Tp Huế"])
    out = m.compute()
    assert out["cer"] == pytest.approx(2 / 14)
    assert out["wer"] == pytest.approx(1 / 4)
    assert out["line_acc"] == 0.5
    assert out["base_cer"] == 0.0 and out["diacritic_cer"] == pytest.approx(2 / 14)


def test_metrics_count_as_torchmetrics_does():
    from torchmetrics import text as tm_text

    from vihtr.text.metrics import CharErrorRate, WordErrorRate

    preds, targets = ["Phường 3  Q.5", "Hà Nôi", ""], ["Phường 3, Q. 5", "Hà Nội", "Huế"]
    for ours, theirs in (
        (CharErrorRate(), tm_text.CharErrorRate()),
        (WordErrorRate(), tm_text.WordErrorRate()),
    ):
        ours.update(preds, targets)
        theirs.update(preds, targets)
        assert float(ours.compute()) == pytest.approx(float(theirs.compute()))


def test_metrics_of_split_lines_merge_into_the_corpus_rates():
    """What DDP does: each process counts its own lines, the states are summed before compute. The CER
    is total edits / total characters, not the mean of the two halves' CERs (0.5 and 0.0 here)."""
    preds, targets = ["ab", "Hoà Bình Tp Huế"], ["ba", "Hoà Bình Tp Huế"]
    whole, first, second = LineMetrics(), LineMetrics(), LineMetrics()
    whole.update(preds, targets)
    first.update(preds[:1], targets[:1])
    second.update(preds[1:], targets[1:])
    for name, metric in first.items():
        metric.merge_state(second[name])
    merged = first.compute()
    assert merged == pytest.approx(whole.compute())
    assert merged["cer"] == pytest.approx(2 / 17) and merged["lines"] == 2 and merged["line_acc"] == 0.5
    assert LineMetrics().compute() == {}
