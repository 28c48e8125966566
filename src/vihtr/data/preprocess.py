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
from PIL import Image

PAD_VALUE = 1.0
# images above this are reduced while decoded; below it inference decodes exactly as training did
REDUCE_ABOVE_PIXELS = 4_000_000
DEFAULT_MAX_PIXELS = (
    40_000_000  # per image: far larger is a decompression bomb (one limit for every entry point)
)

# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose)
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ImageLoadError(ValueError):
    """An input could not be read as an image (missing, corrupt, unsupported, too large)."""


def _exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag, 1 (upright) when absent or unreadable: broken EXIF must not lose the image."""
    try:
        value = img.getexif().get(0x0112, 1)
        return int(value) if int(value) in _ORIENTATION else 1
    except Exception:  # PIL raises many types on malformed EXIF (SyntaxError, struct.error, TypeError...)
        return 1


def _to_8bit(img: Image.Image) -> Image.Image:
    """Any PIL mode -> L, LA, RGB or RGBA with 8 bits per channel, keeping the full tonal range.

    `convert("L")` clips 16- and 32-bit greyscale to white, so those are rescaled here: 16-bit by its range
    (65535), 32-bit integers by the range their values use, floats in [0, 1] as such."""
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            scale = 65535.0
        elif img.mode == "F" and arr.size and float(arr.max()) <= 1.0 and float(arr.min()) >= 0.0:
            scale = 1.0
        else:
            top = float(arr.max()) if arr.size else 255.0
            scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
        return Image.fromarray(np.clip(arr * (255.0 / scale), 0, 255).round().astype(np.uint8), "L")
    if img.mode in ("P", "PA"):
        return img.convert("RGBA")
    if img.mode == "1":
        return img.convert("L")
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def _open(source, max_pixels: int) -> Image.Image:
    """Open (header only) a path, bytes or file object, checking the pixel count before anything is decoded."""
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
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{name}: image is over the limit of {max_pixels:,} pixels") from e
    except Exception as e:  # PIL raises many types on malformed headers
        raise ImageLoadError(f"{name}: not a readable image ({e})") from e
    if img.width * img.height > max_pixels:
        raise ImageLoadError(
            f"{name}: image of {img.width}x{img.height} pixels is over the limit of {max_pixels:,}"
        )
    return img


def load_image(
    source, max_pixels: int = DEFAULT_MAX_PIXELS, target_height: int | None = None, mode: str = "RGB"
) -> Image.Image:
    """Open a path, bytes, file object, numpy array or PIL image as an upright PIL image in `mode` ("RGB" or
    "L"), or raise ImageLoadError. A JPEG read as "L" is decoded straight to grey (its luma channel: within
    3 levels of decoding RGB and converting, half the time of a Kalapa line's decode).

    `target_height` (the model's line height): an image over `REDUCE_ABOVE_PIXELS` is reduced while it is
    decoded (JPEG `draft`) and right after (`reduce`, to no less than twice that height), before any colour
    conversion, so a huge upload costs its own decode and no more. Smaller images, every real line scan,
    are decoded in full, as in training."""
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        arr = source
        if arr.ndim not in (2, 3):
            raise ImageLoadError(f"array image must be HxW or HxWxC, got shape {source.shape}")
        if arr.dtype != np.uint8:
            arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    else:
        img = _open(source, max_pixels)
    if img.width * img.height > max_pixels:
        raise ImageLoadError(f"image of {img.width}x{img.height} pixels is over the limit of {max_pixels:,}")
    if img.width < 1 or img.height < 1:
        raise ImageLoadError("image has no pixels")
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    reduce = bool(target_height) and img.width * img.height > REDUCE_ABOVE_PIXELS
    try:
        if img.format == "JPEG" and img.mode in ("L", "RGB"):
            # decode at 1/2, 1/4 or 1/8 scale straight away (a JPEG's EXIF is in its header)
            turned = _exif_orientation(img) in (5, 6, 7, 8)
            factor = (img.width if turned else img.height) // (2 * target_height) if reduce else 1
            scale = factor if factor >= 2 else 1
            if scale > 1 or mode != img.mode:
                img.draft(mode if mode == "L" else img.mode, (img.width // scale, img.height // scale))
        img.load()  # before reading the EXIF: for PNG that would load, and hide a decoding error
        orientation = _exif_orientation(img)
        img = _to_8bit(img)
    except ImageLoadError:
        raise
    except Exception as e:  # truncated or corrupt data: PIL raises OSError, SyntaxError, ValueError...
        raise ImageLoadError(f"{getattr(img, 'filename', '') or 'image'}: not a readable image ({e})") from e
    if reduce:
        # the model's height is the image's width when the EXIF turns it by 90 degrees
        factor = (img.width if orientation in (5, 6, 7, 8) else img.height) // (2 * target_height)
        if factor >= 2:
            img = img.reduce(factor)
    if orientation != 1:
        img = img.transpose(_ORIENTATION[orientation])
    if img.mode in ("RGBA", "LA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    img = img.convert(mode)
    img.info = {}  # the orientation is applied: a second load_image of this image must not apply it again
    return img


@dataclass(frozen=True)
class Preprocess:
    """How a line image becomes a model input. Stored in every checkpoint and released model."""

    height: int = 64
    max_width: int = 1024
    min_width: int = 32
    width_multiple: int = 16
    channels: int = 1
    keep_ratio: bool = True
    # < 1 narrows every line after its height is fixed: a tone mark needs the vertical pixels, while
    # handwriting is wide enough to lose horizontal ones, and the CNN's cost follows the width
    width_scale: float = 1.0

    def natural_width(self, width: int, height: int) -> int:
        """The width of a `width` x `height` image resized to the model's height (and `width_scale`)."""
        return max(self.min_width, round(width * self.width_scale * self.height / max(height, 1)))

    def target_width(self, width: int, height: int) -> int:
        if not self.keep_ratio:
            return self.max_width
        w = self.natural_width(width, height)
        w = math.ceil(w / self.width_multiple) * self.width_multiple
        return min(w, self.max_width)

    def __call__(self, image) -> torch.Tensor:
        """One image (anything `load_image` takes) -> float tensor C x height x W in [-1, 1]."""
        img = load_image(image, mode="L" if self.channels == 1 else "RGB")
        w = self.target_width(img.width, img.height)
        if self.keep_ratio:
            # keep the aspect ratio up to max_width; a longer line is squeezed to fit
            img = img.resize((min(self.natural_width(img.width, img.height), w), self.height), Image.BILINEAR)
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


def pad_batch(images: list[torch.Tensor], multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad C x H x W_i tensors with blank paper to one B x C x H x W batch, W the widest line rounded up
    to `multiple`; returns (batch, widths). A GPU wants few distinct batch shapes: cuDNN plans its kernels
    for each new one on the CPU."""
    widths = torch.tensor([im.shape[-1] for im in images], dtype=torch.long)
    c, h = images[0].shape[0], images[0].shape[1]
    width = math.ceil(int(widths.max()) / multiple) * multiple
    batch = torch.full((len(images), c, h, width), PAD_VALUE, dtype=images[0].dtype)
    for i, im in enumerate(images):
        batch[i, :, :, : im.shape[-1]] = im
    return batch, widths


# Lines are decoded padded to the next multiple of WIDTH_BUCKET px and batched only with lines of the same
# padded width, so a line reads the same alone or in any batch: the predictor and training validation both
# decode this way, so they give the same text for the same image. 64 px: at most 63 blank columns of
# padding, and batches still fill up.
WIDTH_BUCKET = 64


def bucket_width(width: int, max_width: int, bucket: int = WIDTH_BUCKET) -> int:
    """The width a line of `width` px is decoded at: the next multiple of `bucket`, at most `max_width`."""
    return max(width, min(max_width, math.ceil(width / bucket) * bucket))


def to_width(images: torch.Tensor, width: int) -> torch.Tensor:
    """Cut (...) x W images to `width` columns, or right-pad them with blank paper."""
    if images.shape[-1] >= width:
        return images[..., :width]
    if images.device.type != "cpu" or images.dtype != torch.float32:
        padded = torch.full((*images.shape[:-1], width), PAD_VALUE, dtype=images.dtype, device=images.device)
        padded[..., : images.shape[-1]] = images
        return padded
    # numpy on the CPU: torch.full took ~0.7 ms per line in the predictor when threads contend for 2 cores
    padded = np.full((*images.shape[:-1], width), PAD_VALUE, dtype=np.float32)
    padded[..., : images.shape[-1]] = images.detach().numpy()
    return torch.from_numpy(padded)


def width_buckets(widths, max_width: int, bucket: int = WIDTH_BUCKET) -> dict[int, list[int]]:
    """Padded width -> the positions of the lines decoded at it (in order)."""
    groups: dict[int, list[int]] = {}
    for i, width in enumerate(widths):
        groups.setdefault(bucket_width(int(width), max_width, bucket), []).append(i)
    return groups
