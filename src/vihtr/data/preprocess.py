"""Image loading and preprocessing, defined once and shared by training and inference.

A line image becomes a float tensor C x H x W: grayscale or RGB, resized to `height` keeping its aspect
ratio (width capped at `max_width`, rounded up to `width_multiple`), or, with `keep_ratio=False`, the
seed's fixed-size resize to `height` x `max_width`. Values are scaled to [-1, 1] with paper at +1, so
right padding with `PAD_VALUE` looks like blank paper. A released model stores its `Preprocess` so
inference applies exactly what training did.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

PAD_VALUE = 1.0
DEFAULT_MAX_PIXELS = 40_000_000  # larger images are refused as likely decompression bombs


class ImageLoadError(ValueError):
    """An input could not be read as an image (missing, corrupt, unsupported, too large)."""


def load_image(source, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open a path, bytes, file object, numpy array or PIL image as an RGB PIL image, or raise ImageLoadError."""
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        if arr.ndim not in (2, 3):
            raise ImageLoadError(f"array image must be HxW or HxWxC, got shape {source.shape}")
        img = Image.fromarray(arr)
    else:
        if isinstance(source, (str, os.PathLike)):
            if not os.path.isfile(source):
                raise ImageLoadError(f"no such image file: {source}")
            name = str(source)
        else:
            name = "<bytes>"
        if isinstance(source, (bytes, bytearray, memoryview)):
            if len(source) == 0:
                raise ImageLoadError("empty image data")
            source = io.BytesIO(source)
        try:
            img = Image.open(source)
            if img.width * img.height > max_pixels:
                raise ImageLoadError(
                    f"{name}: image of {img.width}x{img.height} pixels is over the limit of {max_pixels}"
                )
            img.load()
        except ImageLoadError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ImageLoadError(f"{name}: not a readable image ({e})") from e
    if img.width * img.height > max_pixels:
        raise ImageLoadError(f"image of {img.width}x{img.height} pixels is over the limit of {max_pixels}")
    if img.width < 1 or img.height < 1:
        raise ImageLoadError("image has no pixels")
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


@dataclass(frozen=True)
class Preprocess:
    """How a line image becomes a model input. Stored in every checkpoint and released model."""

    height: int = 64
    max_width: int = 1024
    min_width: int = 32
    width_multiple: int = 16
    channels: int = 1
    keep_ratio: bool = True

    def target_width(self, width: int, height: int) -> int:
        if not self.keep_ratio:
            return self.max_width
        w = max(self.min_width, round(width * self.height / max(height, 1)))
        w = math.ceil(w / self.width_multiple) * self.width_multiple
        return min(w, self.max_width)

    def __call__(self, image) -> torch.Tensor:
        """One image (anything `load_image` takes) -> float tensor C x height x W in [-1, 1]."""
        img = load_image(image)
        if self.channels == 1:
            img = img.convert("L")
        w = self.target_width(img.width, img.height)
        if self.keep_ratio:
            # keep the aspect ratio up to max_width; a longer line is squeezed to fit
            natural = max(self.min_width, round(img.width * self.height / max(img.height, 1)))
            img = img.resize((min(natural, w), self.height), Image.BILINEAR)
        else:
            img = img.resize((w, self.height), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
        if arr.ndim == 2:
            arr = arr[None]
        else:
            arr = arr.transpose(2, 0, 1)
        if arr.shape[-1] < w:
            # numpy, not F.pad: torch's pad is ~100x slower here when several threads contend for 2 cores
            padded = np.full((arr.shape[0], arr.shape[1], w), PAD_VALUE, dtype=np.float32)
            padded[..., : arr.shape[-1]] = arr
            arr = padded
        return torch.from_numpy(np.ascontiguousarray(arr))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def pad_batch(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad C x H x W_i tensors with blank paper to one B x C x H x max(W) batch; returns (batch, widths)."""
    widths = torch.tensor([im.shape[-1] for im in images], dtype=torch.long)
    c, h = images[0].shape[0], images[0].shape[1]
    batch = torch.full((len(images), c, h, int(widths.max())), PAD_VALUE, dtype=images[0].dtype)
    for i, im in enumerate(images):
        batch[i, :, :, : im.shape[-1]] = im
    return batch, widths
