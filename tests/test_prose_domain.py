"""The prose domain: CTC beam search with the shipped Vietnamese syllable LM corrects readings that are not
Vietnamese, keeps names and numbers as the image shows them, and its LM never holds a held-out text."""

from __future__ import annotations

import gzip

import editdistance
import pytest
from conftest import REPO_ROOT, ctc_log_probs

from vihtr.inference.domains import PROSE_LM
from vihtr.text.charset import Charset
from vihtr.text.lexicon import NUMBER, lm_key, lm_line


@pytest.fixture(scope="module")
def prose_search():
    from vihtr.inference.domains import ProseDomain

    charset = Charset()
    return charset, ProseDomain(charset).ctc_decoder()


def read(prose_search, readings) -> str:
    charset, search = prose_search
    result = search(*ctc_log_probs(charset, readings))
    assert len(result.token_probs[0]) == len(result.token_ids[0])
    return charset.decode(result.token_ids[0])


def test_lm_keys_drop_case_and_punctuation_and_keep_numbers_apart():
    assert lm_key("Phải,") == lm_key("phải") == "phải"
    assert lm_key('"Ồ') == "ồ"
    assert lm_key("452/8") == lm_key("1.000") == lm_key("12,") == NUMBER
    assert lm_key("t2i") == "t2i"  # digits inside a word are no number: an unknown word
    assert lm_key("...") == ""
    assert lm_line('Trường cầm ống nghe : " Ồ không') == "trường cầm ống nghe ồ không"


@pytest.mark.parametrize(
    "misread, right",
    [
        ("ngưới ta nói", "người ta nói"),  # a tone on the wrong letter: no Vietnamese syllable
        ("có tjếng chuông", "có tiếng chuông"),
        ("Không biết số phận ra xao.", "Không biết số phận ra sao."),  # a syllable, but not here
    ],
)
def test_a_misspelt_common_word_is_corrected(prose_search, misread, right):
    assert read(prose_search, [(misread, 0.6), (right, 0.4)]) == right
    assert read(prose_search, [(right, 0.6), (misread, 0.4)]) == right  # a right reading stays right


def test_a_name_outside_the_lexicon_is_kept(prose_search):
    line = "nhưng Cienco đã không đưa ra"
    assert read(prose_search, [(line, 0.8), (line.replace("Cienco", "Cienca"), 0.2)]) == line


def test_digits_are_never_changed_by_the_lm(prose_search):
    for line in ("năm 1975 và 2024", "số 452/8 đường"):
        other = line.replace("5", "6").replace("4", "1")
        assert read(prose_search, [(line, 0.55), (other, 0.45)]) == line
        assert read(prose_search, [(other, 0.55), (line, 0.45)]) == other


def test_the_shipped_prose_lm_is_the_one_make_lm_builds():
    vocabulary = set((PROSE_LM.parent / f"{PROSE_LM.name}.unigrams").read_text(encoding="utf-8").split())
    for word in ("không", "người", "tiếng", "được", "nghiên", NUMBER):
        assert word in vocabulary
    assert not any(w != w.lower() for w in vocabulary)  # keys: no case
    with gzip.open(PROSE_LM, "rt", encoding="utf-8") as f:
        head = f.read(200)
    assert head.startswith("\\data\\") and "ngram 3=" in head


def test_the_lm_text_holds_no_held_out_line(data_root, tmp_path):
    """The VNOnDB part of the LM text has no line of a fold 0 writer, nor of any text a fold 0 writer copied;
    a public paragraph that quotes a held-out line is dropped, an ordinary one kept."""
    from vihtr.data.lm_text import SHARED_WORDS, prose_lm_lines, vnondb_prose, word_grams
    from vihtr.text.normalize import normalize_text

    training, held_out = vnondb_prose([0])
    assert len(held_out) > 1000 and len(training) > 1000
    quoted = max(held_out, key=len)
    ordinary = "Chọn một ô và gõ vào một số để tính tổng của các ô đã chọn."
    help_pages = tmp_path / "help"
    help_pages.mkdir()
    (help_pages / "page.html").write_text(
        f"<html><body><p>{ordinary}</p><p>Trích: {quoted}</p><p>Select a cell</p></body></html>",
        encoding="utf-8",
    )
    sources = prose_lm_lines([0], libreoffice_help=help_pages)
    help_lines = sources["libreoffice-help-vi"]
    assert help_lines == [lm_line(normalize_text(ordinary, "old"))]
    held = [lm_line(normalize_text(t, "old")) for t in held_out]
    held_grams = set().union(*(word_grams(h) for h in held))
    lm_text = [line for lines in sources.values() for line in lines]
    assert not any(word_grams(line) & held_grams for line in lm_text)
    held_lines = {h for h in held if len(h.split()) >= SHARED_WORDS}
    assert not held_lines & set(lm_text)
    # the training writers' texts do reach the LM when no held-out writer copied them
    assert len(sources["vnondb-training-texts"]) > 1000


def test_prose_reads_held_out_vnondb_lines_better_than_the_plain_reading(data_root):
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from test_shipped_accuracy import held_out_lines

    from vihtr.inference.predictor import Predictor

    predictor = Predictor.from_release(REPO_ROOT / "models" / "vihtr-lite1", backend="onnx", threads=1)
    lines = held_out_lines(predictor, data_root, sources=("vnondb",))["vnondb"]
    images, targets = [line.image for line in lines], [line.text for line in lines]
    errors = {}
    for domain in ("general", "prose", "auto"):
        predictions = predictor.predict(images, domain=domain)
        assert all(not p.error and len(p.char_confidences) == len(p.text) for p in predictions)
        if domain != "auto":
            assert {p.domain for p in predictions} == {domain}
        errors[domain] = sum(editdistance.eval(p.text, t) for p, t in zip(predictions, targets))
    assert errors["prose"] < 0.95 * errors["general"], errors
    assert errors["auto"] < errors["general"], errors
