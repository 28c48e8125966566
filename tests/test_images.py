"""Every image a user may hand us is read right or refused cleanly: bit depths, palettes, CMYK, alpha, EXIF."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vihtr.data.preprocess import ImageLoadError, Preprocess, load_image

# an EXIF block (orientation 6 = turn 90 degrees clockwise) whose tag 0x013f holds a string where rationals
# belong: Pillow's ImageOps.exif_transpose raises TypeError on it (found by fuzzing; a phone wrote worse)
BROKEN_EXIF = bytes.fromhex(
    "4578696600004d4d002a000000080004010f0002000000060000003e011200030000000100060000013f000200000003667700"
    "008769000400000001000000440000000043616c6e6f6e0000ce900300020000001400000062920a0003000000020032000100"
    "000000323032013a30313a30312030303a30303a303000"
)


def line_image(width: int = 240, height: int = 48) -> np.ndarray:
    """A grey ramp with dark strokes: every tone from paper to ink, so a clipped conversion shows."""
    img = Image.new("L", (width, height), 235)
    draw = ImageDraw.Draw(img)
    for x in range(10, width - 10, 24):
        draw.line([(x, 8), (x + 12, height - 8)], fill=20, width=3)
    arr = np.asarray(img).copy()
    arr[:, :40] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :]
    return arr


def encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def grey(img: Image.Image) -> np.ndarray:
    return np.asarray(load_image(img).convert("L"), dtype=np.int16)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_greyscale_keeps_its_tones(fmt):
    arr8 = line_image()
    img16 = Image.fromarray(arr8.astype(np.uint16) * 257)  # I;16, the full 16-bit range
    assert img16.mode == "I;16"
    read = load_image(encoded(img16, fmt))
    assert np.abs(np.asarray(read.convert("L"), dtype=np.int16) - arr8).max() <= 1


def test_32_bit_integer_and_float_greyscale_keep_their_tones():
    arr8 = line_image()
    as_int = Image.fromarray(arr8.astype(np.int32) * 257, "I")  # 16-bit values stored in 32 bits
    as_float = Image.fromarray(arr8.astype(np.float32) / 255.0, "F")  # [0, 1] floats
    assert np.abs(grey(as_int) - arr8).max() <= 1
    assert np.abs(grey(as_float) - arr8).max() <= 1
    assert np.abs(grey(Image.fromarray(arr8.astype(np.int32), "I")) - arr8).max() == 0  # 8-bit values in I


def test_palette_cmyk_and_alpha_images_read_as_their_pixels():
    arr8 = line_image()
    rgb = Image.fromarray(arr8).convert("RGB")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    expected = np.asarray(palette.convert("L"), dtype=np.int16)
    assert np.abs(grey(Image.open(io.BytesIO(encoded(palette, "PNG")))) - expected).max() == 0
    cmyk = Image.open(io.BytesIO(encoded(rgb.convert("CMYK"), "JPEG", quality=100)))
    assert cmyk.mode == "CMYK" and np.abs(grey(cmyk) - arr8).mean() < 3
    transparent = Image.new("LA", rgb.size, (0, 0))  # all transparent: blank paper, not black
    assert grey(transparent).min() == 255
    rgba = rgb.convert("RGBA")
    assert np.abs(grey(Image.open(io.BytesIO(encoded(rgba, "PNG")))) - arr8).max() <= 1
    one_bit = Image.fromarray(arr8 > 128)
    assert set(np.unique(grey(one_bit))) <= {0, 255}


def test_broken_exif_is_ignored_and_the_orientation_applied_once():
    rgb = Image.fromarray(line_image()).convert("RGB")
    data = encoded(rgb, "JPEG", exif=BROKEN_EXIF, quality=95)
    read = load_image(data)
    assert read.size == (rgb.height, rgb.width)  # orientation 6 turns the line upright
    again = load_image(read)  # Preprocess calls load_image on what it gets: no second turn
    assert again.size == read.size
    tensor = Preprocess(height=32, max_width=512)(data)
    assert tensor.shape[-2] == 32


def test_a_huge_image_is_reduced_while_decoded_and_reads_like_the_full_one():
    arr8 = line_image(width=480, height=96)
    big = Image.fromarray(arr8).resize((480 * 10, 96 * 10), Image.NEAREST).convert("RGB")
    pre = Preprocess(height=32, max_width=1024)
    for fmt in ("PNG", "JPEG"):
        data = encoded(big, fmt)
        small = load_image(data, target_height=pre.height)
        assert small.height < 4 * pre.height and small.height >= 2 * pre.height
        full, reduced = pre(load_image(data)), pre(small)
        assert full.shape == reduced.shape
        assert (full - reduced).abs().mean() < 0.02  # of a [-1, 1] range


def test_unreadable_and_oversized_images_are_refused_with_their_reason(tmp_path):
    with pytest.raises(ImageLoadError, match="not a readable image"):
        load_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    truncated = encoded(Image.fromarray(line_image()), "PNG")[:-60]
    with pytest.raises(ImageLoadError):
        load_image(truncated)
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(encoded(Image.new("L", (3000, 3000)), "PNG"), max_pixels=1_000_000)
    with pytest.raises(ImageLoadError, match="no such image file"):
        load_image(tmp_path / "missing.png")


def test_a_line_scan_decodes_exactly_as_in_training():
    """Below the reduction threshold nothing is reduced: inference sees the pixels training saw (a grey model
    reads them decoded grey, within 3 levels: the test below)."""
    scan = Image.fromarray(line_image(width=1500, height=220)).convert("RGB")
    data = encoded(scan, "JPEG", quality=90)
    assert np.array_equal(np.asarray(load_image(data, target_height=48)), np.asarray(load_image(data)))


def test_width_scale_narrows_a_line_after_its_height_is_fixed():
    """`width_scale` resizes to the model's height, then to that fraction of the width; a released model
    without the field (older config.json) reads lines as before."""
    img = Image.fromarray(line_image(width=600, height=60))
    full, narrow = (
        Preprocess(height=48, max_width=1024),
        Preprocess(height=48, max_width=1024, width_scale=0.6),
    )
    assert full(img).shape == (1, 48, 480)
    assert narrow(img).shape == (1, 48, 288)  # 480 x 0.6, already a multiple of 16
    assert Preprocess.from_dict({"height": 48, "max_width": 1024}).width_scale == 1.0
    wide = Image.fromarray(line_image(width=3000, height=60))
    assert narrow(wide).shape == (1, 48, 1024)  # still at most max_width
    assert Preprocess.from_dict(narrow.to_dict()) == narrow


def test_a_jpeg_read_grey_is_decoded_grey_within_three_levels_of_converting_rgb():
    """The predictor of a grey model asks for "L": the JPEG decoder then gives its luma channel, half the
    decoding time of a Kalapa line, and within 3 grey levels of decoding RGB and converting (as training
    does). Other formats and already-decoded images are converted as before."""
    arr = line_image(width=600, height=80)
    bluish = np.stack([arr * 0.85, arr * 0.9, np.minimum(255, arr * 1.0 + 12)], axis=-1).astype(np.uint8)
    data = encoded(Image.fromarray(bluish), "JPEG", quality=85)
    decoded, via_rgb = load_image(data, mode="L"), load_image(data).convert("L")
    assert decoded.mode == "L" and decoded.size == via_rgb.size
    assert np.abs(np.asarray(decoded, dtype=int) - np.asarray(via_rgb, dtype=int)).max() <= 3
    png = encoded(Image.fromarray(bluish), "PNG")
    assert np.array_equal(np.asarray(load_image(png, mode="L")), np.asarray(load_image(png).convert("L")))
    pre = Preprocess(height=48, max_width=1024)
    assert (pre(decoded) - pre(via_rgb)).abs().max() <= 3 / 127.5 + 1e-6
    with pytest.raises(ValueError, match="mode"):
        load_image(data, mode="CMYK")
