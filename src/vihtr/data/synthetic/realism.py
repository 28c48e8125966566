"""How real do synthetic lines look? Classifiers trained to tell real Kalapa lines from synthetic ones.

Their held-out accuracy is the number (issue 9): near 100 % means the two are easy to tell apart, 50 % means
the classifier cannot. Two views:
- `RealismClassifier`, a small CNN on what the recogniser sees: grey, scaled to the model's line height, a
  fixed-width window (the whole line would give its length away). It sees everything, glyph shapes too.
- `StatsClassifier`, a logistic regression on a line's global image statistics (`line_stats`: paper and ink
  levels and tint, contrast, ink share, stroke width, ruled borders, blur, width per character): what the
  form's paper, pen, spacing and the photo make, without the letter shapes.
Budgets and seeds are fixed, so two generations of synthetic lines are compared under the same classifiers.
`scripts/realism.py` runs them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

HEIGHT = 48  # the shipped model's line height
WINDOW = 384  # 8 line heights: several words, never the whole line's length


def to_grey_line(image: Image.Image, height: int = HEIGHT) -> np.ndarray:
    """A line image -> uint8 grey at `height` rows, its width scaled with it."""
    grey = np.asarray(image.convert("L"))
    width = max(1, round(grey.shape[1] * height / grey.shape[0]))
    return cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA)


def window(line: np.ndarray, rng: random.Random, width: int = WINDOW) -> np.ndarray:
    """A random `width`-pixel window of a grey line; a shorter line is mirrored to that width."""
    if line.shape[1] < width:
        line = cv2.copyMakeBorder(line, 0, 0, 0, width - line.shape[1], cv2.BORDER_REFLECT)
    x = rng.randint(0, line.shape[1] - width)
    return line[:, x : x + width]


class RealismNet(nn.Module):
    """Four conv blocks and a linear logit (positive: real). ~70 k parameters: enough to see paper, ink,
    spacing and stroke texture, small enough to train in a minute or two on a CPU."""

    def __init__(self) -> None:
        super().__init__()
        layers, channels = [], 1
        for out in (16, 32, 64, 64):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*layers[:-1], nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def _batch(lines: Sequence[np.ndarray], rng: random.Random, width: int) -> torch.Tensor:
    windows = np.stack([window(line, rng, width) for line in lines]).astype(np.float32)
    return torch.from_numpy(windows / 127.5 - 1.0).unsqueeze(1)


@dataclass
class RealismResult:
    accuracy: float  # held-out, balanced classes
    real_recall: float  # real test lines called real
    synthetic_recall: float  # synthetic test lines called synthetic
    n_test: int


def balanced_result(p_real_of_real: np.ndarray, p_real_of_synthetic: np.ndarray) -> RealismResult:
    """Accuracy over equal numbers of real and synthetic lines, from each line's P(real)."""
    real_recall = float((p_real_of_real > 0.5).mean())
    synthetic_recall = float((p_real_of_synthetic <= 0.5).mean())
    n = len(p_real_of_real) + len(p_real_of_synthetic)
    return RealismResult((real_recall + synthetic_recall) / 2, real_recall, synthetic_recall, n)


class RealismClassifier:
    """`fit(real, synthetic)` on grey lines (`to_grey_line`), then `score` / `p_real` on held-out lines."""

    def __init__(
        self, epochs: int = 6, batch_size: int = 32, lr: float = 2e-3, seed: int = 0, width: int = WINDOW
    ) -> None:
        self.epochs, self.batch_size, self.lr, self.seed, self.width = epochs, batch_size, lr, seed, width
        torch.manual_seed(seed)
        self.net = RealismNet()

    def fit(self, real: Sequence[np.ndarray], synthetic: Sequence[np.ndarray]) -> RealismClassifier:
        rng = random.Random(self.seed)
        items = [(line, 1.0) for line in real] + [(line, 0.0) for line in synthetic]
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=1e-4)
        steps = self.epochs * -(-len(items) // self.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.lr, total_steps=steps)
        loss_fn = nn.BCEWithLogitsLoss()
        self.net.train()
        for _ in range(self.epochs):
            rng.shuffle(items)
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                x = _batch([line for line, _ in chunk], rng, self.width)
                y = torch.tensor([label for _, label in chunk])
                optimizer.zero_grad()
                loss_fn(self.net(x), y).backward()
                optimizer.step()
                schedule.step()
        return self

    @torch.no_grad()
    def p_real(self, lines: Sequence[np.ndarray], seed: int = 1) -> np.ndarray:
        """P(real) of each line's window (a fixed window per line for a given seed)."""
        self.net.eval()
        rng = random.Random(seed)
        out = [
            torch.sigmoid(self.net(_batch(lines[i : i + 64], rng, self.width))).numpy()
            for i in range(0, len(lines), 64)
        ]
        return np.concatenate(out) if out else np.zeros(0)

    def score(self, real: Sequence[np.ndarray], synthetic: Sequence[np.ndarray]) -> RealismResult:
        """Held-out accuracy with as many real as synthetic lines (the larger set is cut)."""
        n = min(len(real), len(synthetic))
        return balanced_result(self.p_real(real[:n]), self.p_real(synthetic[:n], seed=2))


def line_stats(image: Image.Image, chars: int) -> np.ndarray:
    """Global statistics of one line image (RGB) with `chars` characters of text, at the model's height."""
    rgb = np.asarray(image.convert("RGB"))
    width = max(1, round(rgb.shape[1] * HEIGHT / rgb.shape[0]))
    rgb = cv2.resize(rgb, (width, HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = rgb.mean(axis=2)
    paper = np.percentile(grey, 70)
    ink = grey < paper - 60
    ink_share = float(ink.mean())
    edges = float((ink ^ cv2.erode(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)).sum())
    rows = grey.mean(axis=1)
    tint = rgb[grey >= paper].mean(axis=0) if (grey >= paper).any() else rgb.reshape(-1, 3).mean(axis=0)
    ink_rgb = rgb[ink].mean(axis=0) if ink.any() else tint
    sharpness = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    return np.array(
        [
            *np.percentile(grey, [1, 5, 30, 70, 99]),
            grey.std(),
            tint[2] - tint[0],  # paper: blue minus red
            ink_rgb[2] - ink_rgb[0],  # pen: blue minus red
            ink_share,
            2 * ink.sum() / max(edges, 1.0),  # stroke width
            rows[:4].min() - paper,  # a ruled border at the top
            rows[-4:].min() - paper,  # and at the bottom
            np.log1p(sharpness),
            width / max(1, chars),  # pixels per character
        ],
        np.float32,
    )


class StatsClassifier:
    """Logistic regression on `line_stats` (standardised): `fit(real, synthetic)`, then `score`."""

    def fit(self, real: Sequence[np.ndarray], synthetic: Sequence[np.ndarray]) -> StatsClassifier:
        x = torch.from_numpy(np.stack([*real, *synthetic]))
        y = torch.tensor([1.0] * len(real) + [0.0] * len(synthetic))
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        self.linear = nn.Linear(x.shape[1], 1)
        optimizer = torch.optim.LBFGS(self.linear.parameters(), max_iter=200)
        loss_fn = nn.BCEWithLogitsLoss()
        z = (x - self.mean) / self.std

        def closure():
            optimizer.zero_grad()
            loss = loss_fn(self.linear(z).squeeze(1), y) + 1e-3 * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return self

    @torch.no_grad()
    def p_real(self, stats: Sequence[np.ndarray]) -> np.ndarray:
        z = (torch.from_numpy(np.stack(stats)) - self.mean) / self.std
        return torch.sigmoid(self.linear(z).squeeze(1)).numpy()

    def score(self, real: Sequence[np.ndarray], synthetic: Sequence[np.ndarray]) -> RealismResult:
        n = min(len(real), len(synthetic))
        return balanced_result(self.p_real(real[:n]), self.p_real(synthetic[:n]))
