"""The ONNX fast path reads real lines exactly as torch does."""

import json

import pytest
import torch
from inference_helpers import TINY_PREPROCESS, assert_batch_invariant, train_tiny_release

from vihtr.inference.onnx_export import ENCODER_FILE, META_FILE, STEP_FILE, OnnxModel
from vihtr.inference.predictor import Predictor
from vihtr.models.ocr import OCRModel
from vihtr.models.release import load_release, save_release


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, real_images):
    return train_tiny_release(tmp_path_factory.getbasetemp() / "tiny-release", real_images)


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.mark.parametrize("method", ["greedy", "ctc", "beam"])
def test_onnx_reads_real_lines_like_torch(tiny_release, onnx_cache, real_images, method):
    paths = [p for p, _ in real_images]
    torch_preds = Predictor.from_release(tiny_release, method=method).predict(paths)
    onnx_preds = Predictor.from_release(
        tiny_release, method=method, backend="onnx", onnx_cache=onnx_cache, threads=1
    ).predict(paths)
    assert [p.text for p in onnx_preds] == [p.text for p in torch_preds]
    assert len({p.text for p in torch_preds}) > 1
    for o, t in zip(onnx_preds, torch_preds):
        assert o.char_confidences == pytest.approx(t.char_confidences, abs=1e-3)


@pytest.mark.parametrize("method", ["greedy", "ctc"])
def test_onnx_reads_a_line_the_same_alone_and_in_any_batch(tiny_release, onnx_cache, many_real_lines, method):
    predictor = Predictor.from_release(
        tiny_release, method=method, backend="onnx", onnx_cache=onnx_cache, threads=1
    )
    assert_batch_invariant(predictor, many_real_lines, rounds=1, distinct=10)


def test_export_writes_both_graphs_once(tiny_release, onnx_cache, real_images):
    Predictor.from_release(tiny_release, backend="onnx", onnx_cache=onnx_cache)
    folder = onnx_cache / tiny_release.name
    assert (folder / ENCODER_FILE).is_file() and (folder / STEP_FILE).is_file()
    stamp = (folder / ENCODER_FILE).stat().st_mtime_ns
    Predictor.from_release(tiny_release, backend="onnx", onnx_cache=onnx_cache)  # cached: no new export
    assert (folder / ENCODER_FILE).stat().st_mtime_ns == stamp
    assert json.loads((folder / META_FILE).read_text())["fingerprint"]


def test_onnx_encoder_logits_match_torch_for_other_batch_and_width(tiny_release, onnx_cache):
    Predictor.from_release(tiny_release, backend="onnx", onnx_cache=onnx_cache)
    model, preprocess, _ = load_release(tiny_release)
    onnx_model = OnnxModel(onnx_cache / tiny_release.name, model.charset, model.max_len)
    images = torch.rand(5, 1, preprocess.height, 480) * 2 - 1
    widths = torch.tensor([480, 400, 64, 32, 300])
    started = onnx_model.start(images, widths, decoder=False, ctc=True)
    with torch.inference_mode():
        memory, mask = model.encode(images, widths)
        expected = model.ctc_head(memory).log_softmax(-1)
    assert started.lengths.tolist() == (~mask).sum(1).tolist()
    assert torch.allclose(started.ctc_log_probs, expected, atol=1e-3)


def test_lstm_ctc_release_with_same_padding_exports_traced(tmp_path, real_images, monkeypatch):
    """The shipped kind of model (tf_ backbone with "same" padding, BiLSTM columns split in two, CTC only)
    is exported by the TorchScript exporter: the dynamo exporter, which took many minutes on it, is not
    called, and onnxruntime reads real lines as torch does."""
    from vihtr.inference import onnx_export

    def no_dynamo(*args, **kwargs):
        raise AssertionError("the dynamo exporter was called")

    monkeypatch.setattr(onnx_export, "_export", no_dynamo)
    torch.manual_seed(0)
    model = OCRModel(
        backbone="tf_mobilenetv3_small_minimal_100", d_model=64, encoder_layers=1, context="lstm",
        width_stride=4, column_upsample=2, decoder="none", ctc=True, max_len=48, dropout=0.0,
    ).eval()  # fmt: skip
    release = save_release(model, tmp_path / "lstm-ctc", TINY_PREPROCESS)
    files = onnx_export.export_release(release, tmp_path / "onnx")  # checks against torch
    assert [f.name for f in files] == [ENCODER_FILE, META_FILE]
    paths = [p for p, _ in real_images]
    torch_preds = Predictor.from_release(release, method="ctc").predict(paths)
    onnx_preds = Predictor.from_release(
        release, method="ctc", backend="onnx", onnx_cache=tmp_path / "onnx-cache", threads=1
    ).predict(paths)
    assert [p.text for p in onnx_preds] == [p.text for p in torch_preds]


def test_traced_export_that_bakes_in_a_width_is_rejected(tmp_path):
    """A graph traced with a shape-dependent Python value reads only the traced width: the check refuses
    it, so the exporter falls back to dynamo."""
    from vihtr.inference.onnx_export import _export_traced

    class BakesWidth(torch.nn.Module):
        def forward(self, images, widths):
            columns = int(images.shape[-1]) // 8  # a Python int: a constant in the traced graph
            return widths // 8, images.mean(dim=(1, 2))[:, :columns].log_softmax(-1)[..., None]

    class Dynamic(torch.nn.Module):
        def forward(self, images, widths):
            return widths // 8, images.mean(dim=(1, 2))[:, ::8].log_softmax(-1)[..., None]

    args = (torch.rand(2, 1, 32, 256), torch.tensor([256, 160]))
    names = ["images", "widths"], ["lengths", "ctc_log_probs"]
    with torch.no_grad():
        assert not _export_traced(BakesWidth(), args, tmp_path / "baked.onnx", *names)
        assert _export_traced(Dynamic(), args, tmp_path / "dynamic.onnx", *names)


def test_fixed_same_padding_matches_tf_padding_and_the_graph_pads_short_widths(tmp_path):
    """The export fixes the tf_ backbone's "same" pads for the release's height and widths that are a
    multiple of the CNN's width reduction: the network reads such lines exactly as before, `export.json`
    records the multiple, and `OnnxModel` pads any other width with paper to it (masked columns)."""
    import copy

    from vihtr.inference.onnx_export import FixedPadConv2d, fix_same_padding

    torch.manual_seed(0)
    model = OCRModel(
        backbone="tf_mobilenetv3_small_minimal_100", d_model=64, encoder_layers=1, context="lstm",
        width_stride=4, column_upsample=2, decoder="none", ctc=True, max_len=48, dropout=0.0,
    ).eval()  # fmt: skip
    fixed = copy.deepcopy(model)
    multiple = fix_same_padding(fixed, TINY_PREPROCESS.height)
    assert multiple == model.encoder.cnn_stride == 8
    assert any(isinstance(m, FixedPadConv2d) for m in fixed.modules())
    assert not any(type(m).__name__ == "Conv2dSame" for m in fixed.modules())
    images = torch.rand(2, 1, TINY_PREPROCESS.height, 328) * 2 - 1
    widths = torch.tensor([328, 200])
    with torch.inference_mode():
        for width in (328, 96):  # multiples of 8 whose deepest maps differ in parity
            expected, _ = model.encode(images[..., :width], widths.clamp(max=width))
            got, _ = fixed.encode(images[..., :width], widths.clamp(max=width))
            assert torch.equal(got, expected)

    release = save_release(model, tmp_path / "same-pad", TINY_PREPROCESS)
    Predictor.from_release(release, backend="onnx", onnx_cache=tmp_path / "onnx")
    folder = tmp_path / "onnx" / release.name
    assert json.loads((folder / META_FILE).read_text())["width_multiple"] == 8
    onnx_model = OnnxModel(folder, model.charset, model.max_len)
    short = images[..., :324]  # not a multiple of 8: padded with paper to 328
    started = onnx_model.start(short, torch.tensor([324, 200]), decoder=False, ctc=True)
    with torch.inference_mode():
        memory, mask = model.encode(images, torch.tensor([324, 200]))
    assert started.lengths.tolist() == (~mask).sum(1).tolist()
    assert started.ctc_log_probs.shape[1] == mask.shape[1]
