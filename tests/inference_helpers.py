"""A tiny released model for the inference tests, trained a few seconds on real lines so that its
outputs depend on the image (a random model writes nearly the same text for every input)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vihtr.data.preprocess import Preprocess, pad_batch
from vihtr.models.ocr import OCRModel
from vihtr.models.release import save_release
from vihtr.text.charset import PAD

TINY_NET = dict(
    backbone="mobilenetv3_small_050",
    d_model=64,
    nhead=4,
    ffn_dim=128,
    decoder_layers=1,
    dropout=0.0,
    max_len=48,
)
TINY_PREPROCESS = Preprocess(height=32, max_width=512)


def train_tiny_release(folder: Path, lines: list[tuple[Path, str]], steps: int = 80) -> Path:
    """Fit the tiny model on `lines` (path, text) with the decoder and CTC losses; save it as a release."""
    if (folder / "config.json").is_file():  # several test modules share one per session
        return folder
    torch.manual_seed(0)
    model = OCRModel(**TINY_NET)
    images, widths = pad_batch([TINY_PREPROCESS(path) for path, _ in lines])
    targets = [model.charset.encode(text) for _, text in lines]
    length = max(map(len, targets))
    target = torch.tensor([t + [PAD] * (length - len(t)) for t in targets])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        out = model(images, widths, target[:, :-1])
        loss = F.cross_entropy(out["logits"].transpose(1, 2), target[:, 1:], ignore_index=PAD)
        ctc = out["ctc_logits"].log_softmax(-1).transpose(0, 1)
        input_lengths = (~out["memory_mask"]).sum(1)
        label_lengths = torch.tensor([len(t) - 2 for t in targets])
        loss = loss + 0.3 * F.ctc_loss(
            ctc, target[:, 1:-1].clamp(min=0), input_lengths, label_lengths, zero_infinity=True
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_release(model.eval(), folder, TINY_PREPROCESS, {"purpose": "tests"})
    return folder


def assert_batch_invariant(
    predictor, paths: list, rounds: int = 2, seed: int = 0, distinct: int | None = None
) -> None:
    """Each line reads the same alone and inside random batches of 2-16 other lines (text exactly,
    confidence to float noise)."""
    import random

    import pytest

    alone = {p: predictor.predict_one(p) for p in paths}
    # a model that reads, not one that writes a constant (the tiny test model reads less)
    assert len({a.text for a in alone.values()}) >= (distinct or len(paths) // 2)
    rng = random.Random(seed)
    for _ in range(rounds):
        order = list(paths)
        rng.shuffle(order)
        while order:
            size = rng.randint(2, 16)
            group, order = order[:size], order[size:]
            for path, p in zip(group, predictor.predict(group)):
                assert p.text == alone[path].text, (
                    f"{path} reads {p.text!r} in a batch, {alone[path].text!r} alone"
                )
                assert p.confidence == pytest.approx(alone[path].confidence, abs=1e-4)
