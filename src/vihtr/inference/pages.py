"""Read a whole handwritten page: find its lines (`vihtr.inference.layout`), read them, top to bottom.

    from vihtr.inference.pages import PageReader
    reader = PageReader(Predictor.from_release())
    page = reader.read("page.jpg")
    print(page.text)                      # the lines joined by "\\n"
    for line in page.lines:
        print(line.box, line.prediction.text, line.prediction.confidence)

Each line is read by the predictor exactly as a line image would be (its own height, its own domain
choice under `auto`, calibrated confidence), so everything said about line reading holds per line.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from vihtr.data.preprocess import DEFAULT_MAX_PIXELS, ImageLoadError, load_image
from vihtr.inference.layout import WORK_SIDE, Box, FoundLine, find_lines
from vihtr.inference.orientation import box_before_turn, sideways, turned
from vihtr.inference.predictor import CUT_AS_LINE, source_name
from vihtr.inference.types import Prediction

TRIAL_LINES = 3  # lines read both ways up to tell an upside-down page
FLIP_MARGIN = 0.1  # mean confidence by which the turned-over reading must win


@dataclass
class PageLine:
    box: Box  # x0, y0, x1, y1 on the page as given (after its EXIF orientation)
    prediction: Prediction


@dataclass
class PageResult:
    lines: list[PageLine] = field(default_factory=list)  # top to bottom
    source: str = ""
    size: tuple[int, int] = (0, 0)  # the page's width and height
    turn: int = (
        0  # degrees counter-clockwise the page was turned to read it upright (boxes are on the page as given)
    )
    ms: float = 0.0
    error: str = ""  # set instead of lines when the input could not be read

    @property
    def text(self) -> str:
        return "\n".join(line.prediction.text for line in self.lines)


class PageReader:
    """Pages in, lines with boxes, text and confidence out; a `Predictor` reads the lines."""

    def __init__(
        self, predictor, max_skew: float = 3.0, max_pixels: int = DEFAULT_MAX_PIXELS, orient: bool = True
    ) -> None:
        """`predictor`: anything with `predict(images, domain=...) -> list[Prediction]`. `orient`: turn a page
        photographed sideways or upside down upright first (`vihtr.inference.orientation`)."""
        self.predictor = predictor
        self.max_skew = max_skew
        self.max_pixels = max_pixels
        self.orient = orient

    def upright_lines(self, page) -> tuple[int, list[FoundLine]]:
        """The turn that makes the page upright, and its lines found on the page so turned. Sideways is told
        by the ink; upside down by reading its longest lines both ways up (writing turned over reads with
        far less confidence)."""
        turn = 90 if self.orient and sideways(page) else 0
        found = find_lines(turned(page, turn), self.max_skew)
        if not self.orient or not found:
            return turn, found
        longest = sorted(found, key=lambda line: line.box[2] - line.box[0], reverse=True)[:TRIAL_LINES]
        crops = [line.image for line in longest]
        crops += [crop.transpose(Image.Transpose.ROTATE_180) for crop in crops]
        for crop in crops:
            crop.info[CUT_AS_LINE] = True
        read = self.predictor.predict(crops, domain="general")
        upright = sum(p.confidence for p in read[: len(longest)])
        over = sum(p.confidence for p in read[len(longest) :])
        if over > upright + FLIP_MARGIN * len(longest):
            turn = (turn + 180) % 360
            found = find_lines(turned(page, turn), self.max_skew)
        return turn, found

    def read(self, image, domain: str | None = None) -> PageResult:
        return self.read_many([image], domain=domain)[0]

    def read_many(self, images: Sequence, domain: str | None = None) -> list[PageResult]:
        """One `PageResult` per input, in order; an unreadable input gets `error` and costs only itself.
        The lines of all pages are read together, so batches fill up."""
        results, crops, owners = [], [], []
        for image in images:
            start = time.perf_counter()
            source = source_name(image)
            try:
                # a big photo is reduced while it is decoded, never below the size lines are searched at
                page = load_image(image, max_pixels=self.max_pixels, target_height=WORK_SIDE // 2)
            except ImageLoadError as e:
                results.append(PageResult(source=source, error=str(e)))
                continue
            turn, found = self.upright_lines(page)
            result = PageResult(
                source=source, size=page.size, turn=turn, ms=(time.perf_counter() - start) * 1000
            )
            results.append(result)
            for line in found:
                line.image.info[CUT_AS_LINE] = True  # one line already: the predictor need not look again
                crops.append(line.image)
                owners.append((result, box_before_turn(line.box, turn, page.size)))
        predictions = self.predictor.predict(crops, domain=domain) if crops else []
        for (result, box), prediction in zip(owners, predictions):
            prediction.source = result.source
            result.lines.append(PageLine(box, prediction))
            result.ms += prediction.ms
        for result in results:
            # a line read as nothing (a stroke, a smudge) is not a line of the page
            result.lines = [line for line in result.lines if line.prediction.text.strip()]
        return results
