"""What a reading looks like outside Python: the JSON of a line and of a page, as the CLI writes it and the web
API answers it. Each shape is a pydantic model, so the OpenAPI document is generated from the same fields
(`vihtr.app.openapi`); `prediction_json` and `page_json` are the one way a `Prediction` or a `PageResult`
becomes JSON.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    """An answer's model: unknown keys refused, and every key documented as present (answers always give
    all their keys, defaults included)."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class LineReading(Answer):
    text: str = Field("", description="the line's text, Unicode NFC")
    confidence: float = Field(
        0.0,
        ge=0,
        le=1,
        description="expected share of the line's characters read right (calibrated on held-out lines "
        "when the release carries a calibration)",
    )
    char_confidences: list[float] = Field(default_factory=list, description="one per character of `text`")
    review: bool = Field(
        False,
        description="worth checking by hand: under the release's review threshold (`/health`'s "
        "confidence.review_below), or read with a warning",
    )
    domain: str = Field(
        "",
        description="the domain that read this line: general, prose or address (`auto` picks one per "
        "line); empty when it could not be read",
    )
    warning: str = Field(
        "",
        description="why the reading is not to be trusted (with `review` true and confidence 0): e.g. the "
        "image holds a page of several lines, not one",
    )
    ms: float = Field(0.0, description="time spent on this line, in milliseconds")
    error: str = Field("", description="why this input could not be read (empty when it was)")


class PageLine(LineReading):
    box: list[int] = Field(min_length=4, max_length=4, description="x0, y0, x1, y1 on the page, in pixels")


class PageReading(Answer):
    text: str = Field("", description="the lines top to bottom, joined by a newline")
    width: int = 0
    height: int = 0
    turn: int = Field(
        0,
        description="degrees counter-clockwise the page was turned to read it upright (boxes are on the "
        "page as given)",
    )
    lines: list[PageLine] = Field(default_factory=list, description="top to bottom")
    ms: float = Field(0.0, description="time spent on this page, in milliseconds")
    error: str = Field("", description="why this input could not be read (empty when it was)")


def line_reading(
    prediction, review_below: float | None = None, into: type[LineReading] = LineReading, **fields
):
    """Numbers rounded, and `review`: under the release's review threshold or read with a warning, so worth
    checking by hand (False for an unread input). `into`: the model to build (a `LineReading` with more
    fields, given in `fields`)."""
    confidence = float(prediction.confidence)
    error = getattr(prediction, "error", "") or ""
    warning = getattr(prediction, "warning", "") or ""
    return into(
        text=prediction.text,
        confidence=round(confidence, 4),
        char_confidences=[round(float(c), 4) for c in prediction.char_confidences],
        review=bool(not error and (warning or (review_below is not None and confidence < review_below))),
        domain=getattr(prediction, "domain", "") or "",
        warning=warning,
        ms=round(float(getattr(prediction, "ms", 0.0)), 2),
        error=error,
        **fields,
    )


def prediction_json(prediction, review_below: float | None = None) -> dict:
    """One prediction as the CLI's rows and the API's answers give it."""
    return line_reading(prediction, review_below).model_dump()


def page_reading(result, review_below: float | None = None, into: type[PageReading] = PageReading, **fields):
    """A `PageResult`: its text, and each line's box with its reading. `into`: the model to build (a
    `PageReading` with more fields, given in `fields`)."""
    return into(
        text=result.text,
        width=result.size[0],
        height=result.size[1],
        turn=result.turn,
        lines=[
            line_reading(line.prediction, review_below, PageLine, box=list(line.box)) for line in result.lines
        ],
        ms=round(result.ms, 1),
        error=result.error,
        **fields,
    )


def page_json(result, review_below: float | None = None) -> dict:
    """One page as `vihtr pages` writes it: `path`, then the page's reading."""
    return {"path": result.source, **page_reading(result, review_below).model_dump()}
