"""Photometric and geometric augmentation of line images (synthetic or real), one `strength` knob.

`LineAugment(strength)(image, rng)` runs an albumentations pipeline: blur, sensor noise, JPEG,
perspective / affine (small rotation, shear, scale), brightness / contrast. `strength` in [0, 1] scales
both how often each transform fires and how far it goes; 0 returns the image unchanged. The pipeline's
seed is drawn from `rng`, so a fixed rng gives the same augmented image.
"""

from __future__ import annotations

import os
import random

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

PAPER_FILL = (255, 255, 255)  # what geometric transforms reveal at the borders: blank paper


def hand_transforms(hand: float) -> list:
    """Another writer's hand on the same line (issue 9, point 4): wider or narrower letters, a wavy line,
    a broader pen. `hand` in [0, 1] scales how often and how far. No erasing: a hole can take a tone mark
    away and make the label wrong."""
    h = float(hand)
    return [
        A.Affine(
            scale={"x": (1 - 0.25 * h, 1 + 0.25 * h), "y": (1.0, 1.0)},
            fit_output=True,
            border_mode=cv2.BORDER_CONSTANT,
            fill=PAPER_FILL,
            p=0.5 * h,
        ),
        A.GridDistortion(num_steps=5, distort_limit=0.3 * h, border_mode=cv2.BORDER_REPLICATE, p=0.3 * h),
        # erosion of the image is a wider dark stroke: a broader pen
        A.Morphological(scale=(2, 2), operation="erosion", p=0.2 * h),
    ]


def build_pipeline(strength: float, hand: float = 0.0) -> A.Compose:
    s = float(strength)
    return A.Compose(
        [
            *(hand_transforms(hand) if hand > 0 else []),
            A.Affine(
                rotate=(-2.0 * s, 2.0 * s),
                shear={"x": (-8.0 * s, 8.0 * s), "y": (-1.0 * s, 1.0 * s)},
                scale=(1 - 0.08 * s, 1 + 0.04 * s),
                fit_output=True,  # never cut off a letter or a tone mark
                border_mode=cv2.BORDER_CONSTANT,
                fill=PAPER_FILL,
                p=0.5 * s,
            ),
            A.Perspective(scale=(0.005, 0.005 + 0.025 * s), fit_output=True, fill=PAPER_FILL, p=0.3 * s),
            A.OneOf(
                [
                    A.GaussianBlur(blur_limit=(3, 3 + 2 * round(s)), sigma_limit=(0.3, 0.3 + 0.9 * s)),
                    A.MotionBlur(blur_limit=(3, 3 + 2 * round(s))),
                    A.Downscale(scale_range=(1 - 0.55 * s, 1 - 0.1 * s)),
                ],
                p=0.4 * s,
            ),
            A.RandomBrightnessContrast(brightness_limit=0.25 * s, contrast_limit=0.3 * s, p=0.6 * s),
            # luminance-only noise: scanner grain is grey, and per-channel noise costs 5x as much
            A.GaussNoise(std_range=(0.005, 0.005 + 0.05 * s), per_channel=False, p=0.4 * s),
            A.ImageCompression(quality_range=(int(95 - 60 * s), 95), p=0.5 * s),
        ]
    )


class LineAugment:
    """Callable augmenter for RGB PIL line images; `strength` 0 is the identity, 1 is heavy. `hand` > 0 adds
    `hand_transforms` (off by default: two paired runs disagreed, models/README.md)."""

    def __init__(self, strength: float = 0.5, hand: float = 0.0) -> None:
        for name, value in (("strength", strength), ("hand", hand)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.strength, self.hand = strength, hand
        self._pipeline = build_pipeline(strength, hand) if strength > 0 or hand > 0 else None

    def __call__(self, image: Image.Image, rng: random.Random) -> Image.Image:
        if self._pipeline is None:
            return image
        self._pipeline.set_random_seed(rng.getrandbits(32))
        out = self._pipeline(image=np.asarray(image.convert("RGB")))["image"]
        return Image.fromarray(out)
