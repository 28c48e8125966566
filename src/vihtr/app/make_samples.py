"""Render the sample line images shipped with the web app (`src/vihtr/app/samples/`).

They are synthetic, typeset in the vendored handwriting fonts, so the page has something to show without
any real data. Run again to regenerate: `python -m vihtr.app.make_samples`.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vihtr.app.samples import SHIPPED_SAMPLES
from vihtr.paths import ASSETS_DIR

FONTS_DIR = ASSETS_DIR / "fonts"
LINES = [
    ("patrick-hand", "Tổ 5 Ấp Suối Đục Sông Nhạn Cẩm Mỹ Đồng Nai"),
    ("mali", "452/8d Hoàng Văn Thụ P 6 Phú Nhuận Tp Hồ Chí Minh"),
    ("itim", "Thôn Đông Xã Hoà Bình Huyện Kim Bôi Hoà Bình"),
    ("dancing-script", "Số 7 Ngõ 12 Phường Láng Hạ Quận Đống Đa Hà Nội"),
    ("sriracha", "Xóm Trại Thuỷ Nguyên Hải Phòng"),
    ("charm", "Khu phố 3 Thị trấn Dương Đông Phú Quốc Kiên Giang"),
]
HEIGHT = 64


def render_line(text: str, font_path: Path, rng: random.Random) -> Image.Image:
    font = ImageFont.truetype(str(font_path), 36)
    left, top, right, bottom = font.getbbox(text)
    pad = 12
    paper = rng.randint(235, 250)
    image = Image.new("L", (right - left + 2 * pad, HEIGHT), paper)
    ink = rng.randint(20, 70)
    ImageDraw.Draw(image).text((pad - left, (HEIGHT - (bottom - top)) // 2 - top), text, font=font, fill=ink)
    # a slight slant and blur, as a pen on a scanned form would give
    image = image.rotate(rng.uniform(-1.5, 1.5), resample=Image.BILINEAR, expand=False, fillcolor=paper)
    return image.filter(ImageFilter.GaussianBlur(0.6))


def main(out_dir: Path = SHIPPED_SAMPLES) -> None:
    rng = random.Random(0)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (font_name, text) in enumerate(LINES, start=1):
        font_path = next((FONTS_DIR / font_name).glob("*.ttf"))
        path = out_dir / f"sample-{i:02d}.png"
        render_line(text, font_path, rng).save(path, optimize=True)
        print(f"{path} ({path.stat().st_size // 1024} KB): {text}")


if __name__ == "__main__":
    main()
