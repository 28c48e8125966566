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
