"""The address domain: the unit-tree check of an address tail, the word LM (counted here, read by KenLM),
CTC beam search with it, and the domain switch of the predictor on real held-out lines."""

import gzip
import math

import editdistance
import numpy as np
import pytest
from conftest import ctc_log_probs

from vihtr.inference.domains import ADDRESS_LM, realign_confidences
from vihtr.text.address import AddressCorrector
from vihtr.text.arpa import UNK, WordNgramLM
from vihtr.text.charset import Charset

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corrector() -> AddressCorrector:
    return AddressCorrector()


@pytest.mark.parametrize(
    "read, expected",
    [
        ("An Bình Cao Lãnh Đồng Trn", "An Bình Cao Lãnh Đồng Tháp"),  # province
        ("Ấp Long Thới Lng Thượng Cần Giuộc Long An", "Ấp Long Thới Long Thượng Cần Giuộc Long An"),  # ward
        ("Tổ 6 Khu Phố 4 Lê Lợi Quy Nhơn Bình Địh", "Tổ 6 Khu Phố 4 Lê Lợi Quy Nhơn Bình Định"),
        ("Thôn Hán Hoá Dại Phú Sơn Dương Tyên Quang", "Thôn Hán Hoá Đại Phú Sơn Dương Tuyên Quang"),
    ],
)
def test_a_misspelt_unit_is_corrected(corrector, read, expected):
    assert corrector.correct(read) == expected


@pytest.mark.parametrize(
    "line",
    [
        "452/8d Hoàng Văn Thụ P 6 Phú Nhuận Tp Hồ Chí Minh",
        "Thôn Thái Khang Thiệu Hoà Thiệu Hoá Thanh Hoá",
        "628b Đường 19/3 Phường 9 Thành Phố Vũng Tàu",  # a district without its province
        "Tổ 5 Ấp Suối Đục Sông Nhạn Cẩm Mỹ Đồng Nai",
    ],
)
def test_a_valid_address_is_left_alone(corrector, line):
    assert corrector.correct(line) == line


@pytest.mark.parametrize(
    "line",
    [
        "hôm nay trời rất đẹp và tôi đi học",
        "Mẹ tôi sống ở quê với bà ngoại",
        "Anh ấy về thăm Đồng Trn",  # one fuzzy unit alone is not evidence enough
    ],
)
def test_a_prose_line_is_not_turned_into_an_address(corrector, line):
    assert corrector.correct(line) == line


def test_house_and_ward_numbers_never_change(corrector):
    # "Quận 22" does not exist in Hồ Chí Minh, "Quận 2" does: a digit is never edited to make a match
    # nor "Mỹ Đình 3" (not a ward) into "Mỹ Đình 1", one edit away
    lines = (
        "221/93 Lò Gốm Phường 24 Quận 22 Tp Hồ Chí Minh",
        "12a Phường H1 Quận 8 Tp Hồ Chí Mih",
        "Số 7 Mỹ Đình 3 Nam Từ Liêm Hà Nội",
    )
    for line in lines:
        out = corrector.correct(line)
        assert [w for w in out.split() if any(c.isdigit() for c in w)] == [
            w for w in line.split() if any(c.isdigit() for c in w)
        ]
    assert corrector.correct("12a Phường 1 Quận 8 Tp Hồ Chí Mih") == "12a Phường 1 Quận 8 Tp Hồ Chí Minh"


def test_upper_case_stays_upper(corrector):
    assert corrector.correct("AN BÌNH CAO LÃNH ĐỒNG TRN") == "AN BÌNH CAO LÃNH ĐỒNG THÁP"


def test_replaced_characters_get_the_confidence_of_what_they_replace():
    old, new = "Đồng Trn", "Đồng Tháp"
    conf = [0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.2, 0.5]
    out = realign_confidences(old, new, conf)
    assert len(out) == len(new)
    assert out[:6] == conf[:6]  # "Đồng T" kept
    assert all(0.2 <= c <= 0.5 for c in out[6:])


LINES = ["a b c", "a b d", "b c a", "a c", "d d a b c", "c b a", "a b c", "a d c"]


@pytest.mark.parametrize("prune", [1, 2])
def test_every_word_distribution_sums_to_one(prune):
    lm = WordNgramLM.train(LINES, order=3, prune_below=prune)
    words = [g[0] for g in lm.probs[0] if g[0] != UNK] + [UNK]
    for context in ([], ["<s>"], ["a"], ["a", "b"], ["d", "d"], ["c", "c"], ["<s>", "a"]):
        assert math.isclose(sum(10 ** lm.log10_prob(context, w) for w in words), 1.0, abs_tol=1e-6)


def test_kenlm_reads_the_arpa_as_we_wrote_it(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    lm = WordNgramLM.train(LINES * 3 + ["d c b a", "b b"], order=3, prune_below=2)
    path = tmp_path / "lm.arpa"
    lm.write_arpa(path)
    model = kenlm.Model(str(path))
    for sentence in ("a b c", "d c b a", "c c c", "a x b"):
        words = sentence.split() + ["</s>"]
        ours = [lm.log10_prob(["<s>", *words[:i]], w) for i, w in enumerate(words)]
        theirs = [score for score, _, _ in model.full_scores(sentence, bos=True, eos=True)]
        assert np.allclose(ours, theirs, atol=1e-4), (sentence, ours, theirs)


def test_the_shipped_lm_is_the_one_make_lm_builds_and_knows_every_province():
    vocabulary = set((ADDRESS_LM.parent / f"{ADDRESS_LM.name}.unigrams").read_text(encoding="utf-8").split())
    for word in ("Tháp", "Hoá", "Tp", "Thôn", "Ấp", "Quận", "Huế"):
        assert word in vocabulary
    with gzip.open(ADDRESS_LM, "rt", encoding="utf-8") as f:
        head = f.read(200)
    assert head.startswith("\\data\\") and "ngram 3=" in head


def test_beam_search_with_the_lm_settles_a_reading_the_model_is_torn_on():
    from vihtr.inference.ctc_lm import KenLMCTCDecoder
    from vihtr.models.decoding import ctc_best_path

    charset = Charset()
    full, mask = ctc_log_probs(charset, [("Đồng Trốp", 0.6), ("Đồng Tháp", 0.4)])
    best_path = ctc_best_path(full, mask)
    assert charset.decode(best_path.token_ids[0]) == "Đồng Trốp"
    result = KenLMCTCDecoder(charset, ADDRESS_LM)(full, mask)
    assert charset.decode(result.token_ids[0]) == "Đồng Tháp"
    assert len(result.token_probs[0]) == len("Đồng Tháp")
    assert all(0 < p <= 1 for p in result.token_probs[0])


def test_auto_searches_with_the_address_lm_only_lines_that_end_like_an_address():
    from vihtr.inference.domains import AddressDomain, routed_decoder
    from vihtr.inference.types import Prediction

    charset = Charset()
    domain = AddressDomain(charset)
    parsed = []
    best_chain = domain.corrector.best_chain
    domain.corrector.best_chain = lambda line: parsed.append(line) or best_chain(line)
    for text, gated_in in (("Cao Lãnh Đồng Trốp", True), ("Anh về Đồng Trốp", False)):
        wrong, right = text, text.replace("Trốp", "Tháp")
        full, mask = ctc_log_probs(charset, [(wrong, 0.6), (right, 0.4)])
        chosen = []
        parsed.clear()
        # no prose LM: the lines that are no address keep their plain reading
        auto = routed_decoder(charset, domain, None, chosen)(full, mask)
        read = charset.decode(auto.token_ids[0])
        assert read == (right if gated_in else wrong)
        assert [[route.domain for route in routes] for routes in chosen] == [
            ["address" if gated_in else "general"]
        ]
        # the tail check reuses the routing's parse of the tail when the search kept the text
        domain.postprocess(Prediction(read, 0.9, [0.9] * len(read)), chosen[0][0])
        assert parsed == ([wrong, right] if gated_in else [wrong])


@pytest.fixture(scope="module")
def held_out_kalapa(data_root):
    """30 Kalapa lines of the held-out fold 0 (writers the shipped model never saw). The source assigns the
    folds itself, as `make folds` would, so the test needs no generated file."""
    from vihtr.data.sources.real import LineFolderSource

    source = LineFolderSource(data_root / "kalapa2023", name="kalapa", fold=0, split="val")
    rows = list(zip(source.keys, source.texts))
    return [(source.root / key, text) for key, text in rows[::14][:30]]


def test_the_address_domain_reads_held_out_addresses_better(held_out_kalapa):
    from vihtr.inference.predictor import Predictor

    predictor = Predictor.from_release(REPO / "models" / "vihtr-lite1", domain="general")
    images, labels = zip(*held_out_kalapa)
    errors = {}
    for domain in ("general", "address", "auto"):
        preds = predictor.predict(list(images), domain=domain)
        for p in preds:
            assert not p.error and len(p.char_confidences) == len(p.text) and 0 <= p.confidence <= 1
        errors[domain] = sum(editdistance.eval(p.text, t) for p, t in zip(preds, labels))
    assert predictor.domain == "general"  # a call's domain does not change the default
    # both LM domains read addresses far better than the plain reading; `auto`, which routes each line, reads
    # them about as well as `address` (on all 432 lines: 4.24 % against 4.18 %; on 30 either may lead)
    assert max(errors["address"], errors["auto"]) < 0.85 * errors["general"], errors
    assert abs(errors["auto"] - errors["address"]) <= 0.1 * errors["address"] + 2, errors


def test_dropping_sure_blank_frames_keeps_the_characters_apart():
    from vihtr.inference.ctc_lm import drop_sure_blanks

    blank, a = [0.0, -30.0], [-30.0, 0.0]
    logp = np.array([blank, blank, a, blank, blank, blank, a, a, blank], dtype=np.float32)
    kept = drop_sure_blanks(logp)
    assert kept[:, 1].argmax() == 1 and kept.tolist() == [blank, a, blank, a, a, blank]  # "a a" stays two
    assert drop_sure_blanks(logp[:0]).shape == (0, 2)
