"""The recognition networks: shapes, stride surgery, decoding correctness, losses, releases, ONNX export."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from vihtr.data.preprocess import Preprocess, pad_batch
from vihtr.models import losses
from vihtr.models.decoders import index_batch
from vihtr.models.decoding import DecodeResult, beam_search, ctc_best_path, greedy_decode
from vihtr.models.encoder import PAPER_MARGIN
from vihtr.models.layers import BiLSTMLayer, reverse_within_lengths
from vihtr.models.ocr import OCRModel
from vihtr.models.release import Release, average_checkpoints, load_release, network_state, save_release
from vihtr.text.charset import EOS, MASK, PAD, SOS

CHARS = "abcd "
TINY = dict(charset_chars=CHARS, d_model=32, nhead=4, ffn_dim=64, decoder_layers=1, dropout=0.0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def targets_for(model: OCRModel, texts: list[str]) -> torch.Tensor:
    rows = [model.charset.encode(t) for t in texts]
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, ids in enumerate(rows):
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def noise_image(width: int, seed: int, height: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, height, width, generator=g) * 2 - 1


# ---------------------------------------------------------------- shapes and stride surgery


@pytest.mark.parametrize("backbone", ["tf_efficientnetv2_b1", "tf_efficientnetv2_b2"])
@pytest.mark.parametrize("decoder", ["transformer", "attention", "none"])
def test_forward_shapes(backbone, decoder):
    torch.manual_seed(0)
    model = OCRModel(**{**TINY, "backbone": backbone, "decoder": decoder}).eval()
    images, widths = pad_batch([noise_image(128, 0), noise_image(80, 1)])
    tgt = targets_for(model, ["abc", "d"])
    out = model(images, widths, tgt[:, :-1])
    vocab = len(model.charset)
    if decoder == "none":
        assert out["logits"] is None
    else:
        assert out["logits"].shape == (2, tgt.shape[1] - 1, vocab)
    assert out["ctc_logits"].shape == (2, (128 + PAPER_MARGIN) // 8, vocab)
    assert (~out["memory_mask"]).sum(1).tolist() == [16, 10]


@pytest.mark.parametrize("backbone", ["tf_efficientnetv2_b1", "resnet18", "efficientnet_b0"])
@pytest.mark.parametrize("width_stride", [8, 4])
def test_width_stride_divides_only_the_width(backbone, width_stride):
    model = OCRModel(**{**TINY, "backbone": backbone, "width_stride": width_stride, "decoder": "none"}).eval()
    for width in (128, 136, 250):
        images = torch.zeros(2, 1, 32, width)
        memory, mask = model.encode(images, torch.tensor([width, 50]))
        assert memory.shape == (2, math.ceil((width + PAPER_MARGIN) / width_stride), 32)
        assert (~mask).sum(1).tolist() == [math.ceil(width / width_stride), math.ceil(50 / width_stride)]


@pytest.mark.parametrize("context", ["transformer", "lstm"])
def test_column_upsample_splits_each_cnn_column(context):
    """CNN at stride 8, two output columns per CNN column: the CTC head sees stride-4 columns."""
    config = {**TINY, "backbone": "resnet18", "width_stride": 4, "column_upsample": 2, "decoder": "none",
              "encoder_layers": 1, "context": context}  # fmt: skip
    model = OCRModel(**config).eval()
    for width in (128, 136):
        memory, mask = model.encode(torch.zeros(2, 1, 32, width), torch.tensor([width, 50]))
        assert memory.shape == (2, 2 * math.ceil((width + PAPER_MARGIN) / 8), 32)
        assert (~mask).sum(1).tolist() == [math.ceil(width / 4), math.ceil(50 / 4)]


def test_bilstm_layer_never_sees_padding():
    """Each row's real columns read the same whatever follows them in the padded batch."""
    torch.manual_seed(0)
    layer = BiLSTMLayer(16, dropout=0.0).eval()
    x = torch.randn(3, 12, 16)
    lengths = torch.tensor([12, 7, 3])
    with torch.no_grad():
        batched = layer(x, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = layer(x[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(batched[i, :n], alone[0], atol=1e-5, rtol=0)
            other = x[i : i + 1].clone()
            other[:, n:] = 100.0  # different padding
            torch.testing.assert_close(layer(other, lengths[i : i + 1])[0, :n], alone[0], atol=1e-5, rtol=0)
    assert torch.equal(reverse_within_lengths(reverse_within_lengths(x, lengths), lengths), x)


def test_bad_width_stride_is_refused():
    with pytest.raises(ValueError, match="width_stride"):
        OCRModel(**{**TINY, "width_stride": 3})


def test_config_rebuilds_the_same_network():
    model = OCRModel(**{**TINY, "decoder": "attention", "encoder_layers": 1})
    config = json.loads(json.dumps(model.config))  # plain values only
    rebuilt = OCRModel(**config)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())  # strict: same keys and shapes
    assert rebuilt.charset.chars == CHARS


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("decoder", ["transformer", "attention"])
def test_incremental_steps_match_teacher_forcing(decoder):
    torch.manual_seed(0)
    model = OCRModel(**{**TINY, "decoder": decoder, "decoder_layers": 2, "encoder_layers": 1}).eval()
    images, widths = pad_batch([noise_image(128, 0), noise_image(64, 1)])
    tgt_in = targets_for(model, ["abcd a", "dd"])[:, :-1]
    with torch.no_grad():
        full = model(images, widths, tgt_in)["logits"].log_softmax(-1)
        memory, mask = model.encode(images, widths)
        state = model.decoder.init_state(memory, mask)
        steps = []
        for t in range(tgt_in.shape[1]):
            log_probs, state = model.decoder.step(state, tgt_in[:, t])
            steps.append(log_probs)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-4, rtol=1e-4)


def test_transformer_cache_grows_by_one_token_per_step():
    model = OCRModel(**{**TINY, "decoder_layers": 2}).eval()
    memory, mask = model.encode(torch.zeros(1, 1, 32, 64), torch.tensor([64]))
    state = model.decoder.init_state(memory, mask)
    for length in (1, 2, 3):
        _, state = model.decoder.step(state, torch.tensor([SOS]))
        assert state["past_k"].shape[3] == length and state["past_v"].shape[3] == length


@pytest.mark.parametrize("decoder", ["transformer", "attention"])
def test_greedy_equals_beam_of_one(decoder):
    torch.manual_seed(1)
    model = OCRModel(**{**TINY, "decoder": decoder}).eval()
    images, widths = pad_batch([noise_image(128, 2), noise_image(96, 3), noise_image(64, 4)])
    greedy = model.decode(images, widths, "greedy", max_len=12)
    beam = model.decode(images, widths, "beam", beam_size=1, max_len=12)
    assert greedy.token_ids == beam.token_ids
    assert greedy.scores == pytest.approx(beam.scores, abs=1e-5)
    for g, b in zip(greedy.token_probs, beam.token_probs):
        assert g == pytest.approx(b, abs=1e-5)
    assert all(SOS not in ids and MASK not in ids and PAD not in ids for ids in greedy.token_ids)


class ScriptedDecoder:
    """A decoder whose next-token distribution is a fixed function of the prefix (chars x=4, y=5).

    The greedy path "x x" scores a mean log-prob of about -0.56, the better line "y" about -0.43:
    only a search that keeps a second beam finds it.
    """

    vocab = 6

    def _dist(self, prefix: list[int]) -> list[float]:
        p = [0.0] * self.vocab
        if not prefix:
            p[4], p[5] = 0.55, 0.45
        elif len(prefix) == 1 and prefix[0] == 4:
            p[4], p[5], p[EOS] = 0.34, 0.33, 0.33
        elif len(prefix) == 1:
            p[EOS], p[4], p[5] = 0.95, 0.03, 0.02
        else:
            p[EOS], p[4] = 0.999, 0.001
        return [math.log(x) if x > 0 else -1e9 for x in p]

    def init_state(self, memory, memory_mask):
        return {"prefix": torch.zeros(memory.shape[0], 0, dtype=torch.long)}

    def step(self, state, prev_tokens):
        prefix = state["prefix"]
        if not (prev_tokens == SOS).all():  # the first step reads SOS, which is no part of the prefix
            prefix = torch.cat([prefix, prev_tokens[:, None]], dim=1)
        log_probs = torch.tensor([self._dist(row) for row in prefix.tolist()])
        return log_probs, {"prefix": prefix}

    def reorder_state(self, state, index):
        return index_batch(state, index)


def test_beam_search_finds_the_line_greedy_misses():
    memory, mask = torch.zeros(2, 3, 8), torch.zeros(2, 3, dtype=torch.bool)
    greedy = greedy_decode(ScriptedDecoder(), memory, mask, max_len=5)
    beam = beam_search(ScriptedDecoder(), memory, mask, max_len=5, beam_size=2)
    assert greedy.token_ids == [[4, 4], [4, 4]]
    assert beam.token_ids == [[5], [5]]
    expected = (math.log(0.45) + math.log(0.95)) / 2
    assert beam.scores == pytest.approx([expected, expected], abs=1e-6)
    assert beam.token_probs == [pytest.approx([0.45]), pytest.approx([0.45])]
    assert greedy.scores[0] == pytest.approx(
        (math.log(0.55) + math.log(0.34) + math.log(0.999)) / 3, abs=1e-6
    )


def test_ctc_best_path_collapses_repeats_and_blanks():
    a, b, blank = 4, 5, 0
    frames = [(a, 0.6), (a, 0.9), (blank, 0.8), (a, 0.7), (b, 0.5), (b, 0.8), (blank, 0.9), (b, 0.9)]
    logits = torch.full((1, len(frames) + 2, 6), -10.0)
    for t, (tok, p) in enumerate(frames):
        logits[0, t] = math.log((1 - p) / 5)
        logits[0, t, tok] = math.log(p)
    logits[0, len(frames) :, a] = 10.0  # padded columns must be ignored
    mask = torch.tensor([[False] * len(frames) + [True, True]])
    result = ctc_best_path(logits, mask)
    assert result.token_ids == [[a, a, b, b]]  # a blank separates repeats, a run is one character
    assert result.token_probs[0] == pytest.approx([0.9, 0.7, 0.8, 0.9], abs=1e-5)
    assert result.scores[0] == pytest.approx(sum(math.log(p) for _, p in frames) / len(frames), abs=1e-5)


def test_ctc_only_model_refuses_autoregressive_decoding():
    model = OCRModel(**{**TINY, "decoder": "none"}).eval()
    images, widths = torch.zeros(1, 1, 32, 64), torch.tensor([64])
    assert isinstance(model.decode(images, widths), DecodeResult)  # default: CTC
    with pytest.raises(ValueError, match="CTC-only"):
        model.decode(images, widths, "greedy")


def test_an_unknown_decoding_method_is_refused_by_name():
    model = OCRModel(**TINY).eval()
    with pytest.raises(ValueError, match="unknown decoding method 'beam4': one of greedy, beam, ctc"):
        model.decode(torch.zeros(1, 1, 32, 64), torch.tensor([64]), "beam4")


# ---------------------------------------------------------------- losses


def test_label_smoothing_ce_ignores_pad_and_matches_plain_ce():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9)
    targets = torch.tensor([[4, 5, EOS, PAD], [6, EOS, PAD, PAD]])
    plain = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD)
    assert losses.label_smoothing_ce(logits, targets, 0.0) == pytest.approx(plain.item(), abs=1e-5)
    changed = logits.clone()
    changed[targets == PAD] = 100.0
    for smoothing in (0.0, 0.1):
        assert losses.label_smoothing_ce(changed, targets, smoothing) == pytest.approx(
            losses.label_smoothing_ce(logits, targets, smoothing).item(), abs=1e-5
        )


def test_ctc_loss_handles_specials_empty_and_too_long_targets():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 8, requires_grad=True)
    mask = torch.tensor([[False] * 6, [False] * 4 + [True] * 2, [False] * 2 + [True] * 4])
    targets = torch.tensor([[SOS, 4, 5, 5, EOS, PAD], [SOS, EOS, PAD, PAD, PAD, PAD], [SOS, 4, 5, 6, 7, EOS]])
    loss, infeasible = losses.ctc_loss(logits, mask, targets, torch.tensor([5, 2, 6]))
    assert torch.isfinite(loss)
    assert infeasible.item() == 1  # 4 characters in 2 columns; "455" in 6 fits (the doubled 5 needs 4)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    expected = F.ctc_loss(
        logits.log_softmax(-1).transpose(0, 1),
        torch.tensor([[4, 5, 5, 0], [0, 0, 0, 0], [4, 5, 6, 7]]),
        torch.tensor([6, 4, 2]),
        torch.tensor([3, 0, 4]),
        zero_infinity=True,
    )
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_ctc_min_columns_counts_a_blank_inside_doubled_letters():
    packed, lengths = losses.ctc_targets(torch.tensor([[SOS, 4, 4, 4, EOS], [SOS, 4, 5, EOS, PAD]]))
    assert lengths.tolist() == [3, 2]
    assert losses.ctc_min_columns(packed, lengths).tolist() == [5, 2]


def test_mask_decoder_input_masks_only_characters():
    tgt_in = torch.tensor([[SOS, 4, 5, 6, EOS, PAD], [SOS, 7, 8, PAD, PAD, PAD]])
    assert torch.equal(losses.mask_decoder_input(tgt_in, 0.0), tgt_in)
    all_masked = losses.mask_decoder_input(tgt_in, 1.0)
    is_char = tgt_in >= 4
    assert (all_masked[is_char] == MASK).all() and torch.equal(all_masked[~is_char], tgt_in[~is_char])
    big = torch.randint(4, 20, (64, 64))
    some = losses.mask_decoder_input(big, 0.25, torch.Generator().manual_seed(0))
    assert 0.2 < (some == MASK).float().mean() < 0.3
    assert torch.equal(some, losses.mask_decoder_input(big, 0.25, torch.Generator().manual_seed(0)))


# ---------------------------------------------------------------- a tiny model that learns


TEXTS = ["abc", "dd a"]


def _settle_batchnorm(model: OCRModel, images, widths) -> None:
    """Make BatchNorm's running statistics exactly those of the training batch (2 fixed images)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model.encode(images, widths)
    model.eval()


@pytest.fixture(scope="module", params=["transformer", "attention"])
def overfit(request):
    """A tiny model trained on two fixed images of different widths (padded together) until it reads both."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = OCRModel(**{**TINY, "d_model": 64, "decoder": request.param})
    images, widths = pad_batch([noise_image(96, 10), noise_image(128, 11)])
    targets = targets_for(model, TEXTS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for step in range(150):
        model.train()
        out = model(images, widths, losses.mask_decoder_input(targets[:, :-1], 0.1))
        loss = losses.label_smoothing_ce(out["logits"], targets[:, 1:], 0.1)
        loss = loss + 0.3 * losses.ctc_loss(out["ctc_logits"], out["memory_mask"], targets)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9:
            _settle_batchnorm(model, images, widths)
            if all(model.texts(model.decode(images, widths, m)) == TEXTS for m in ("greedy", "beam", "ctc")):
                break
    _settle_batchnorm(model, images, widths)
    return model, images, widths, step


def test_tiny_model_overfits_two_lines(overfit):
    model, images, widths, steps = overfit
    assert steps < 149, "did not learn the two lines in 150 steps"
    for method in ("greedy", "beam", "ctc"):
        result = model.decode(images, widths, method)
        assert model.texts(result) == TEXTS, method
        assert all(0.0 < p <= 1.0 for probs in result.token_probs for p in probs)
        assert all(s <= 0.0 for s in result.scores)


def test_decoding_is_padding_invariant(overfit):
    """An image read alone or in a batch padded with a wider one gives the same tokens and probabilities."""
    model, images, widths, _ = overfit
    narrow = images[:1, :, :, : int(widths[0])]
    for method in ("greedy", "beam", "ctc"):
        alone = model.decode(narrow, widths[:1], method)
        batched = model.decode(images, widths, method)
        assert alone.token_ids[0] == batched.token_ids[0], method
        assert alone.token_probs[0] == pytest.approx(batched.token_probs[0], abs=0.03), method


def test_release_round_trip_in_fp16(overfit, tmp_path):
    model, images, widths, _ = overfit
    preprocess = Preprocess(height=32, max_width=256)
    save_release(model, tmp_path / "release", preprocess, {"steps": 150, "data": ["two noise images"]})
    weights = torch.load(tmp_path / "release" / "weights.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    config = json.loads((tmp_path / "release" / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["charset_chars"] == CHARS

    loaded, loaded_preprocess, metadata = load_release(tmp_path / "release")
    assert not loaded.training and next(loaded.parameters()).dtype == torch.float32
    assert loaded_preprocess == preprocess and metadata == {"steps": 150, "data": ["two noise images"]}
    assert loaded.texts(loaded.decode(images, widths)) == model.texts(model.decode(images, widths))
    tgt_in = targets_for(model, TEXTS)[:, :-1]
    with torch.no_grad():
        ref, got = model(images, widths, tgt_in), loaded(images, widths, tgt_in)
    torch.testing.assert_close(got["logits"], ref["logits"], atol=0.05, rtol=0.01)


def test_load_release_refuses_a_foreign_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_release(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError):
        load_release(tmp_path)


def test_release_reads_its_reading_settings_and_updates_metadata_in_place(overfit, tmp_path):
    model, *_ = overfit
    save_release(
        model, tmp_path / "r", Preprocess(height=32, max_width=256), {"decode_method": "ctc", "steps": 9}
    )
    release = Release(tmp_path / "r")
    assert release.exists() and release.decode_method == "ctc" and release.calibration is None
    assert release.model_config == model.config and release.domain is None
    release.update_metadata(calibration={"kind": "isotonic"}, domain="address")
    again = Release(tmp_path / "r")  # what another process reads
    assert again.metadata == {
        "decode_method": "ctc",
        "steps": 9,
        "calibration": {"kind": "isotonic"},
        "domain": "address",
    }
    assert not list((tmp_path / "r").glob("*.tmp"))
    assert again.parameter_count() == sum(p.numel() for p in model.parameters())
    release.update_metadata(decode_method="nonsense")
    assert release.decode_method is None  # a method the code does not know is not recommended
    assert not Release(tmp_path / "none").exists() and Release(tmp_path / "none").config == {}
    with pytest.raises(FileNotFoundError):
        Release(tmp_path / "none").update_metadata(domain="prose")


def test_network_state_takes_the_networks_part_of_a_training_checkpoint():
    w = torch.ones(1)
    assert network_state({"model.a": w, "shortcut.b": w}) == {"a": w}
    assert network_state({"a": w}) == {"a": w}  # a bare network state dict as it is


# ---------------------------------------------------------------- checkpoint averaging


def test_average_checkpoints(tmp_path):
    model = OCRModel(**{**TINY, "decoder": "none"})
    state = model.state_dict()
    paths = []
    for i in range(3):  # Lightning checkpoints: weights under "state_dict", keys prefixed "model."
        path = tmp_path / f"{i}.ckpt"
        torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": i}, path)
        paths.append(path)
    averaged = average_checkpoints(paths)
    assert averaged.keys() == state.keys()
    for k, v in state.items():
        torch.testing.assert_close(averaged[k], v)

    shifted = {k: v + 1.0 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(shifted, tmp_path / "plain.pt")
    torch.save(state, tmp_path / "base.pt")
    mean = average_checkpoints([tmp_path / "base.pt", tmp_path / "plain.pt"], prefix="")
    name = next(k for k, v in state.items() if v.is_floating_point())
    torch.testing.assert_close(mean[name], state[name] + 0.5)
    model.load_state_dict(mean)

    with pytest.raises(ValueError, match="same weights"):
        torch.save({"other": torch.zeros(1)}, tmp_path / "other.pt")
        average_checkpoints([tmp_path / "base.pt", tmp_path / "other.pt"], prefix="")


# ---------------------------------------------------------------- ONNX export of the encoder


def _check_encoder_onnx(backbone: str, tmp_path, **config) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = OCRModel(
        **{**TINY, "backbone": backbone, "encoder_layers": 1, "decoder": "none", **config}
    ).eval()
    images, widths = pad_batch([noise_image(128, 0), noise_image(72, 1)])
    batch, width = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("width", min=32, max=4096)
    program = torch.onnx.export(
        model.encoder,
        (images, widths),
        dynamo=True,
        input_names=["images", "widths"],
        output_names=["memory", "memory_mask"],
        dynamic_shapes={"images": {0: batch, 3: width}, "widths": {0: batch}},
        verbose=False,
    )
    program.save(tmp_path / "encoder.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "encoder.onnx"), providers=["CPUExecutionProvider"])
    for shape_widths in ([200, 100, 64], [64]):  # other batch sizes and widths than the traced ones
        images, widths = pad_batch([noise_image(w, w) for w in shape_widths])
        memory, mask = session.run(None, {"images": images.numpy(), "widths": widths.numpy()})
        with torch.no_grad():
            ref_memory, ref_mask = model.encode(images, widths)
        assert (mask == ref_mask.numpy()).all()
        assert abs(memory - ref_memory.numpy()).max() < 1e-4


def test_encoder_exports_to_onnx(tmp_path):
    _check_encoder_onnx("resnet18", tmp_path)


def test_bilstm_encoder_with_split_columns_exports_to_onnx(tmp_path):
    _check_encoder_onnx("resnet18", tmp_path, context="lstm", width_stride=4, column_upsample=2)


@pytest.mark.slow
def test_efficientnetv2_encoder_exports_to_onnx(tmp_path):
    _check_encoder_onnx("tf_efficientnetv2_b1", tmp_path)


def test_a_coarser_cnn_stride_starts_from_the_finer_models_column_split():
    """Fine-tuning at CNN stride 16 (columns split in 4) from a model at stride 8 (split in 2): each new CNN
    column is split as the old model split the two columns it now covers."""
    from vihtr.models.encoder import tile_column_split

    config = {**TINY, "backbone": "resnet18", "encoder_layers": 1, "context": "lstm", "width_stride": 4}
    fine = OCRModel(**config, column_upsample=2)
    coarse = OCRModel(**config, column_upsample=4)
    state = fine.state_dict()
    tile_column_split(state, coarse.encoder)
    coarse.load_state_dict(state)
    weight, d = fine.encoder.upsample.weight, config["d_model"]
    torch.testing.assert_close(coarse.encoder.upsample.weight[: 2 * d], weight)
    torch.testing.assert_close(coarse.encoder.upsample.weight[2 * d :], weight)
    with pytest.raises(ValueError, match="cannot fit"):  # a finer split cannot come from a coarser one
        tile_column_split(coarse.state_dict(), fine.encoder)
