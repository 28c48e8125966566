"""The character address LM: what it learns, its file, and its fusion into beam search, predictor and CLI."""

import gzip
import json
import math
import random

import pytest
import torch
from inference_helpers import train_tiny_release

from vihtr.cli import build_parser, main
from vihtr.data.synthetic.address import AddressGenerator
from vihtr.inference.lm import END, CharNgramLM
from vihtr.inference.predictor import Predictor
from vihtr.models.decoders import index_batch
from vihtr.models.decoding import beam_search
from vihtr.text.charset import EOS, SOS, Charset

CHARSET = Charset()
ADDRESS = "Thành Phố Hà Nội"
MISREAD = "Thành Phố Hà Nọi"


def addresses(n: int, seed: int) -> list[str]:
    generator = AddressGenerator()
    rng = random.Random(seed)
    return [generator.generate(rng) for _ in range(n)]


@pytest.fixture(scope="module")
def lm() -> CharNgramLM:
    # pruning on, so that the tests also cover the back-off mass of pruned n-grams
    return CharNgramLM.train(addresses(3000, seed=0), order=7, prune_below=2, prune_from=4)


@pytest.fixture(scope="module")
def lm_file(lm, tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "address.json.gz"
    lm.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, real_images):
    return train_tiny_release(tmp_path_factory.getbasetemp() / "tiny-release", real_images)


def test_seen_addresses_are_likelier_than_shuffled_ones(lm):
    rng = random.Random(1)
    for line in addresses(30, seed=99):  # other lines than the LM's, from the same generator
        shuffled = "".join(rng.sample(line, len(line)))
        if shuffled != line:
            assert lm.log_prob_text(line) > lm.log_prob_text(shuffled) + 5, line
    assert lm.perplexity(addresses(200, seed=99)) < 4


def test_each_next_token_distribution_sums_to_one(lm):
    states = [lm.initial_state(), "\x02Thôn ", "à Nội,", "xyzqw!", "\x02"]
    for state in states:
        probs = [math.exp(lp) for lp in lm.log_probs(state)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-9), state
        assert min(p for p in probs if p > 0) > 0 and probs[SOS] == 0.0
    assert sum(math.exp(lp) for lp in CharNgramLM.train([], order=3).log_probs("\x02")) == pytest.approx(1.0)


def test_states_follow_the_token_ids(lm):
    state = lm.initial_state()
    for ch in "Hà Nộ":
        state = lm.advance(state, CHARSET.encode(ch, add_special=False)[0])
    assert state == "\x02Hà Nộ"[-(lm.order - 1) :]
    assert lm.log_prob_next(state, CHARSET.encode("i", add_special=False)[0]) == pytest.approx(
        math.log(lm.prob(state, "i"))
    )
    assert lm.log_prob_next(state, EOS) == pytest.approx(math.log(lm.prob(state, END)))


def test_save_and_load_give_the_same_log_probs(lm, lm_file):
    with gzip.open(lm_file, "rt", encoding="utf-8") as f:
        assert json.load(f)["format"] == "vihtr-char-ngram"  # plain gzip'd JSON, no pickle
    loaded = CharNgramLM.load(lm_file)
    for state in ["\x02", "\x02Tổ 1", "ng Nai", "Hồ Chí"]:
        assert loaded.log_probs(state) == lm.log_probs(state)
    line = addresses(1, seed=5)[0]
    assert loaded.log_prob_text(line) == lm.log_prob_text(line)


def test_another_charset_reads_the_same_characters(lm):
    other = Charset(chars="€" + CHARSET.chars[::-1])  # other ids, and one character the LM never saw
    rebound = lm.with_charset(other)
    state = "\x02Hà Nộ"
    for ch in "iaN ":
        assert rebound.log_prob_next(state, other.encode(ch, add_special=False)[0]) == pytest.approx(
            lm.log_prob_next(state, CHARSET.encode(ch, add_special=False)[0])
        )
    euro = other.encode("€", add_special=False)[0]
    assert rebound.log_prob_next(state, euro) < math.log(1e-5)
    # an unknown character leaves no known context: what follows it is read with no context at all
    assert rebound.prob(rebound.advance(state, euro), "i") == lm.prob("", "i")


class TornDecoder:
    """A decoder that reads `ADDRESS` with probability 0.45 and `MISREAD` with 0.55, and little else."""

    def __init__(self) -> None:
        self.lines = [(CHARSET.encode(ADDRESS)[1:], 0.45), (CHARSET.encode(MISREAD)[1:], 0.55)]

    def _dist(self, prefix: list[int]) -> list[float]:
        p = [1e-4] * len(CHARSET)
        for ids, weight in self.lines:
            if ids[: len(prefix)] == prefix and len(prefix) < len(ids):
                p[ids[len(prefix)]] += weight
        total = sum(p)
        return [math.log(x / total) for x in p]

    def init_state(self, memory, memory_mask):
        return {"prefix": torch.zeros(memory.shape[0], 0, dtype=torch.long)}

    def step(self, state, prev_tokens):
        prefix = state["prefix"]
        if not (prev_tokens == SOS).all():
            prefix = torch.cat([prefix, prev_tokens[:, None]], dim=1)
        return torch.tensor([self._dist(row) for row in prefix.tolist()]), {"prefix": prefix}

    def reorder_state(self, state, index):
        return index_batch(state, index)


def decode_torn(**fusion) -> list[str]:
    memory, mask = torch.zeros(2, 3, 8), torch.zeros(2, 3, dtype=torch.bool)
    result = beam_search(TornDecoder(), memory, mask, max_len=30, beam_size=3, **fusion)
    return [CHARSET.decode(ids) for ids in result.token_ids], result


def test_the_lm_settles_a_model_torn_between_two_readings(lm):
    assert lm.log_prob_text(ADDRESS) > lm.log_prob_text(MISREAD)
    plain, plain_result = decode_torn()
    assert plain == [MISREAD, MISREAD]
    fused, fused_result = decode_torn(lm=lm, lm_weight=0.5)
    assert fused == [ADDRESS, ADDRESS]
    # scores and probabilities stay the model's own, not the fused ones
    ids = CHARSET.encode(ADDRESS)[1:]
    model_logps = [TornDecoder()._dist(ids[:i])[tok] for i, tok in enumerate(ids)]
    assert fused_result.token_probs[0] == pytest.approx([math.exp(lp) for lp in model_logps[:-1]])
    assert fused_result.scores[0] == pytest.approx(sum(model_logps) / len(ids))
    assert fused_result.scores[0] < plain_result.scores[0]


def test_weight_zero_or_an_uninformative_lm_change_nothing(lm):
    plain, plain_result = decode_torn()
    for fusion in ({"lm": lm, "lm_weight": 0.0}, {"lm": CharNgramLM.train([], order=1), "lm_weight": 2.0}):
        texts, result = decode_torn(**fusion)
        assert texts == plain
        assert result.scores == pytest.approx(plain_result.scores, abs=1e-6)
        assert result.token_probs == plain_result.token_probs


def test_predictor_fuses_the_lm_into_beam_search(tiny_release, real_images, lm_file):
    images = [path for path, _ in real_images[:2]]
    beam = Predictor.from_release(tiny_release, method="beam").predict(images)
    uniform = CharNgramLM.train([], order=1)  # fusion with a flat LM is plain beam search, through lock step
    flat = Predictor.from_release(tiny_release, method="greedy", lm=uniform, lm_weight=1.0)
    assert flat.method == "beam"
    assert [p.text for p in flat.predict(images)] == [p.text for p in beam]
    ensemble = Predictor.from_release([tiny_release, tiny_release], method="beam", lm=lm_file, lm_weight=0.3)
    assert ensemble.predict_one(images[0]).error == ""
    with pytest.raises(ValueError, match="beam"):
        Predictor.from_release(tiny_release, method="ctc", lm=lm_file)


def test_cli_predict_and_serve_take_an_lm(tiny_release, real_images, lm_file, tmp_path):
    out = tmp_path / "out.json"
    args = ["predict", str(real_images[0][0]), "--models", str(tiny_release), "-q", "-o", str(out)]
    assert main([*args, "--lm", str(lm_file), "--lm-weight", "0.5"]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))[0]["error"] == ""
    serve = build_parser().parse_args(["serve", "--lm", str(lm_file), "--lm-weight", "0.2"])
    assert (serve.lm, serve.lm_weight) == (str(lm_file), 0.2)
