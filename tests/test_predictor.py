"""The predictor as a user calls it: images of every kind in, NFC text with confidences out."""

import json
import unicodedata

import numpy as np
import pytest
from conftest import REPO_ROOT
from inference_helpers import assert_batch_invariant, train_tiny_release
from PIL import Image

from vihtr.inference.ensemble import EnsembleDecoder
from vihtr.inference.predictor import Predictor, default_model_paths
from vihtr.models.release import load_release


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, real_images):
    return train_tiny_release(tmp_path_factory.getbasetemp() / "tiny-release", real_images)


@pytest.fixture(scope="session")
def predictor(tiny_release):
    return Predictor.from_release(tiny_release, batch_size=3)


def test_one_real_line_gives_nfc_text_and_confidences(predictor, real_images):
    p = predictor.predict_one(real_images[0][0])
    assert p.error == ""
    assert p.text and p.text == unicodedata.normalize("NFC", p.text)
    assert 0.0 <= p.confidence <= 1.0
    assert len(p.char_confidences) == len(p.text)
    assert all(0.0 <= c <= 1.0 for c in p.char_confidences)
    # uncalibrated release: the geometric mean of the character probabilities
    assert p.confidence == pytest.approx(np.exp(np.mean(np.log(p.char_confidences))))
    assert p.source == str(real_images[0][0]) and p.ms > 0


def test_path_pil_numpy_and_bytes_read_the_same(predictor, real_images):
    path = real_images[1][0]
    pil = Image.open(path)
    inputs = [str(path), pil, np.asarray(pil), path.read_bytes()]
    results = predictor.predict(inputs)
    assert {r.text for r in results} == {results[0].text}
    # a path and its bytes decode the JPEG straight to grey; an opened image or an array reaches the
    # predictor as RGB and is converted (within 3 grey levels of the JPEG's own luma, `load_image`)
    path_result, pil_result, array_result, bytes_result = results
    assert bytes_result.char_confidences == pytest.approx(path_result.char_confidences, abs=1e-4)
    assert pil_result.char_confidences == pytest.approx(array_result.char_confidences, abs=1e-4)
    assert array_result.char_confidences == pytest.approx(path_result.char_confidences, abs=2e-3)


def test_unreadable_inputs_give_errors_and_the_batch_goes_on(predictor, real_images, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not a jpeg at all")
    good = real_images[2][0]
    results = predictor.predict([corrupt, good, tmp_path / "missing.png", b""])
    assert results[0].error and "corrupt.jpg" in results[0].error and results[0].text == ""
    assert results[1].error == "" and results[1].text == predictor.predict_one(good).text
    assert "no such image file" in results[2].error
    assert results[3].error


def test_width_batching_keeps_input_order_and_matches_one_by_one(predictor, real_images):
    paths = [p for p, _ in real_images]
    batched = predictor.predict(paths)  # batch_size 3: sorted by width over three batches
    single = [predictor.predict_one(p) for p in paths]
    assert [b.source for b in batched] == [str(p) for p in paths]
    assert [b.text for b in batched] == [s.text for s in single]
    assert len({b.text for b in batched}) > 1  # the texts differ, so the order is really checked
    for b, s in zip(batched, single):
        assert b.confidence == pytest.approx(s.confidence, abs=1e-4)


def test_a_line_reads_the_same_alone_and_in_any_batch(many_real_lines):
    """The shipped model over 60 real lines of mixed widths, each alone and in random batch compositions."""
    from PIL import Image as PILImage

    widths = {PILImage.open(p).width * 48 // PILImage.open(p).height // 64 for p in many_real_lines}
    assert len(widths) >= 4  # several width buckets, so batches really mix widths
    predictor = Predictor.from_release(REPO_ROOT / "models" / "vihtr-lite1", batch_size=16)
    assert_batch_invariant(predictor, many_real_lines)


def test_the_shipped_default_on_onnxruntime_reads_a_line_the_same_alone_and_in_any_batch(
    many_real_lines, tmp_path
):
    """The path users get by default (`--backend auto`: onnxruntime for the shipped default), on the same
    60 real lines: the exported graph pads and batches like torch."""
    predictor = Predictor.from_release(
        REPO_ROOT / "models" / "vihtr-lite1", batch_size=16, backend="onnx", onnx_cache=tmp_path, threads=1
    )
    assert_batch_invariant(predictor, many_real_lines, rounds=1)


def test_channels_last_weights_read_like_the_default_layout(many_real_lines):
    """The predictor runs the CNN channels-last (faster on CPU); the text must not change."""
    import torch

    paths = many_real_lines[:16]
    fast = Predictor.from_release(REPO_ROOT / "models" / "vihtr-lite1")
    plain = Predictor.from_release(REPO_ROOT / "models" / "vihtr-lite1")
    for step_model in plain.decoder.models:
        step_model.model.encoder.backbone.to(memory_format=torch.contiguous_format)
    conv = next(
        m for m in fast.decoder.models[0].model.encoder.backbone.modules() if m.__class__.__name__ == "Conv2d"
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    got, want = fast.predict(paths), plain.predict(paths)
    assert [p.text for p in got] == [p.text for p in want]
    for g, w in zip(got, want):
        assert g.confidence == pytest.approx(w.confidence, abs=1e-3)


@pytest.mark.parametrize("method", ["greedy", "beam", "ctc"])
def test_ensemble_of_a_model_with_itself_is_the_model(tiny_release, real_images, method):
    paths = [p for p, _ in real_images[:4]]
    single = Predictor.from_release(tiny_release, method=method).predict(paths)
    double = Predictor.from_release([tiny_release, tiny_release], method=method).predict(paths)
    assert isinstance(double[0].text, str)
    assert [d.text for d in double] == [s.text for s in single]
    for d, s in zip(double, single):
        assert d.char_confidences == pytest.approx(s.char_confidences, abs=1e-4)


def test_ensemble_refuses_models_with_another_charset(tiny_release):
    from vihtr.models.ocr import OCRModel

    model, _, _ = load_release(tiny_release)
    other = OCRModel(charset_chars="abc", backbone="mobilenetv3_small_050", d_model=32, nhead=4, ffn_dim=64)
    with pytest.raises(ValueError, match="charset"):
        EnsembleDecoder([model, other])


def test_default_model_paths_reads_the_environment(tiny_release, monkeypatch, tmp_path):
    monkeypatch.setenv("VIHTR_MODELS", str(tiny_release.parent))
    assert str(tiny_release.resolve()) in default_model_paths()
    monkeypatch.setenv("VIHTR_MODELS", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="no released model"):
        default_model_paths()


def test_auto_backend_is_onnx_on_a_cpu_where_every_model_exports(tmp_path):
    """`--backend auto` (the CLI's and the app's default): onnxruntime for CTC heads and transformer
    decoders on a CPU; torch for the GRU attention decoder (not exported) and for other devices."""
    from vihtr.inference.predictor import resolve_backend

    folders = {}
    for decoder in ("none", "transformer", "attention"):
        folders[decoder] = tmp_path / decoder
        folders[decoder].mkdir()
        (folders[decoder] / "config.json").write_text(json.dumps({"model": {"decoder": decoder}}))
    assert resolve_backend("auto", [folders["none"]]) == "onnx"
    assert resolve_backend("auto", [folders["none"], folders["transformer"]]) == "onnx"
    assert resolve_backend("auto", [folders["none"], folders["attention"]]) == "torch"
    assert resolve_backend("auto", [folders["none"]], device="cuda") == "torch"
    assert resolve_backend("torch", [folders["none"]]) == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", [folders["none"]])


def test_a_ctc_ensemble_picks_the_reading_both_models_find_likely_even_when_their_peaks_lag():
    """Two CTC models trained apart peak a column apart: their per-column mean is blank everywhere, while
    rescoring each model's reading by the summed CTC log-likelihood keeps the text."""
    import torch

    from vihtr.inference.ensemble import Started, ctc_inputs, ctc_log_likelihood, rescore_ctc
    from vihtr.models.decoding import BLANK, FIRST_CHAR_ID, ctc_best_path

    x, y, columns = FIRST_CHAR_ID, FIRST_CHAR_ID + 1, 6

    def model(peaks: dict[int, int], peak: float) -> Started:
        probs = torch.full((1, columns, FIRST_CHAR_ID + 2), 1e-4)
        probs[0, :, BLANK] = 1.0
        for t, char in peaks.items():
            probs[0, t, char], probs[0, t, BLANK] = peak, 1 - peak
        return Started(lengths=torch.tensor([columns]), ctc_log_probs=(probs / probs.sum(-1, True)).log())

    early, late = model({0: x, 2: y}, 0.8), model({1: x, 3: y}, 0.7)
    mean = torch.stack([early.ctc_log_probs, late.ctc_log_probs]).exp().mean(dim=0).log()
    averaged = Started(lengths=early.lengths, ctc_log_probs=mean)
    assert ctc_best_path(*ctc_inputs(averaged)).token_ids == [[]]  # the mean loses both characters
    result = rescore_ctc([early, late])
    assert result.token_ids == [[x, y]]
    assert len(result.token_probs[0]) == 2 and result.token_probs[0][0] == pytest.approx(0.8, abs=1e-3)
    # a text longer than the columns allow is impossible, not likely
    assert ctc_log_likelihood(early.ctc_log_probs[0], columns, [x, y] * 4) == float("-inf")
