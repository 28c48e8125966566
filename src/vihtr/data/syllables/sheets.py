"""Contact sheets to check the syllable splits by eye: each line drawn with its syllables in turn colours
(dropped ones grey), the cuts in red, and each syllable's label under its ink."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from vihtr.data.sources.inkml import draw_strokes
from vihtr.data.synthetic.fonts import load_font

COLOURS = ((200, 30, 30), (30, 90, 200), (20, 140, 60), (160, 60, 170), (200, 120, 0))
GREY = (175, 175, 175)
ROW = 64  # pixels of ink per line
LABEL_FONT = "itim"  # a plain vendored font with Vietnamese marks


def _label_font(size: int):
    try:
        return load_font(LABEL_FONT, size)
    except (OSError, KeyError, ValueError):
        from PIL import ImageFont

        return ImageFont.load_default()


def split_sheet(items: list[tuple[np.ndarray, np.ndarray, object]], width: int = 1600) -> Image.Image:
    """`items`: (points, stroke_ends, LineSplit) per line -> one sheet, a line per row, scaled to fit."""
    rows = []
    font = _label_font(16)
    for points, stroke_ends, split in items:
        low = np.percentile(points[:, 1], 1) - 0.35 * split.band
        scale = ROW / (1.7 * split.band)
        x0 = points[:, 0].min()
        line_w = (points[:, 0].max() - x0) * scale
        if line_w > width - 20:
            scale *= (width - 20) / line_w
        pts = (points - [x0, low]) * scale + [10, 4]
        canvas = np.full((ROW + 8, width, 3), 255, np.uint8)
        ends = np.asarray(stroke_ends)
        starts = np.concatenate([[0], ends[:-1]])
        for s, (a, b) in enumerate(zip(starts, ends)):
            i = int(split.stroke_syllable[s])
            mask = np.zeros(canvas.shape[:2], np.uint8)
            draw_strokes(mask, pts[a:b], np.array([b - a]), 2)
            colour = COLOURS[i % len(COLOURS)] if split.kept[i] else GREY
            canvas[mask > 0] = colour
        image = Image.new("RGB", (width, ROW + 34), "white")
        image.paste(Image.fromarray(canvas), (0, 0))
        draw = ImageDraw.Draw(image)
        for cut in split.cuts:
            x = (cut - x0) * scale + 10
            draw.line([(x, 0), (x, ROW + 8)], fill=(230, 0, 0), width=1)
        if split.why and len(split.cuts) != len(split.tokens) - 1:  # dropped before it was cut
            draw.text((10, ROW + 10), f"{' '.join(split.tokens)}   [{split.why}]", fill=GREY, font=font)
            rows.append(image)
            continue
        bounds = [10, *((c - x0) * scale + 10 for c in split.cuts), 10 + (points[:, 0].max() - x0) * scale]
        for i, token in enumerate(split.tokens):
            colour = COLOURS[i % len(COLOURS)] if split.kept[i] else GREY
            draw.text((bounds[i] + 2, ROW + 10), token, fill=colour, font=font)
        rows.append(image)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows) or 1), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet


def syllable_sheet(syllables: list, columns: int = 8, cell: tuple[int, int] = (190, 96)) -> Image.Image:
    """Syllables (bank.Syllable) drawn one per cell, each with its label under it."""
    font = _label_font(18)
    rows = -(-len(syllables) // columns)
    sheet = Image.new("RGB", (columns * cell[0], max(rows, 1) * cell[1]), "white")
    draw = ImageDraw.Draw(sheet)
    ink_h = cell[1] - 30
    for n, s in enumerate(syllables):
        x, y = (n % columns) * cell[0], (n // columns) * cell[1]
        scale = ink_h / 1.7  # a band is 1/1.7 of the room: marks above and tails below fit
        pts = s.points * scale + [6, ink_h / 2]
        if pts[:, 0].max() > cell[0] - 8:
            pts[:, 0] *= (cell[0] - 8) / pts[:, 0].max()
        mask = np.zeros((ink_h, cell[0]), np.uint8)
        draw_strokes(mask, pts, s.stroke_ends, 2)
        sheet.paste(Image.fromarray(255 - mask).convert("RGB"), (x, y))
        draw.text((x + 6, y + ink_h + 4), f"{s.text}  ({s.writer})", fill=(200, 30, 30), font=font)
        draw.rectangle([x, y, x + cell[0] - 1, y + cell[1] - 1], outline=(220, 220, 220))
    return sheet
