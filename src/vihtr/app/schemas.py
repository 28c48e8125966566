"""The web API's requests and answers as pydantic models: the routes (`vihtr.app.routes`) build their answers
from them and the OpenAPI document (`vihtr.app.openapi`) is generated from them. A line's and a page's
reading are the CLI's too, so they live in `vihtr.inference.answers`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vihtr.inference.answers import Answer, LineReading, PageReading
from vihtr.inference.domains import DOMAINS

Domain = Literal[DOMAINS]  # type: ignore[valid-type]  (a tuple of names, unpacked by Literal)


class ErrorAnswer(BaseModel):
    """Every failure: a bad request, a refused file, a server fault (which names a logged `reference`)."""

    model_config = ConfigDict(extra="forbid")
    error: str
    reference: str | None = Field(None, description="on a 500 only: where the server logged the failure")


def unread_only():
    """An item's `error`: given only for a file that could not be read."""
    return Field("", exclude_if=lambda error: not error, description="why this file could not be read")


class PredictionItem(LineReading):
    name: str = Field(description="the uploaded file's name")
    error: str = unread_only()


class PageItem(PageReading):
    name: str = Field(description="the uploaded file's name")
    error: str = unread_only()


class PredictAnswer(Answer):
    predictions: list[PredictionItem] = Field(description="one per image, in upload order")
    model: list[str] = Field(description="the models that read them")
    domain: Domain | None = Field(description="the domain asked for, or the model's default")
    total_ms: float


class PredictFailure(Answer):
    """No file of the request could be read: each file's entry says why."""

    error: str
    predictions: list[PredictionItem]
    model: list[str]
    total_ms: float


class PagesAnswer(Answer):
    pages: list[PageItem] = Field(description="one per page, in upload order")
    model: list[str]
    domain: Domain | None = Field(description="the domain asked for, or the model's default")
    total_ms: float


class PagesFailure(Answer):
    """No page of the request could be read: each page's entry says why."""

    error: str
    pages: list[PageItem]
    model: list[str]
    total_ms: float


class Limits(Answer):
    max_files: int = Field(description="files per request")
    max_upload_mb: float = Field(description="megabytes per request")
    max_pixels: int = Field(description="pixels per image")
    max_request_pixels: int = Field(description="pixels per request, all images together")


class ConfidenceInfo(Answer):
    calibrated: bool = Field(description="line confidences are calibrated on held-out lines")
    review_below: float | None = Field(description="the release's review threshold (null: none)")


class Health(Answer):
    status: Literal["ok"]
    models_loaded: bool
    model: list[str] = Field(description="the loaded models (empty before the first load)")
    model_error: str = Field("", description="why the models could not be loaded (empty when they could)")
    domain: Domain | None = Field(description="the model's default domain")
    domains: list[Domain]
    version: str
    limits: Limits
    corrections: bool = Field(description="the server saves reviewed lines (`POST /api/corrections`)")
    confidence: ConfidenceInfo


class Sample(Answer):
    name: str
    url: str


class Samples(Answer):
    samples: list[Sample] = Field(description="distinct samples, at most n")


class Saved(Answer):
    saved: str = Field(description="images/<name>, the name the server chose")
    text: str = Field(description="the text saved, NFC")
    replaced: bool = Field(description="the same image was saved before: its text is replaced")
    lines: int = Field(description="lines in the set")


class ImagesForm(BaseModel):
    """multipart/form-data: image files under `images` (or `image`), and the domain."""

    images: list[bytes] = Field(default_factory=list, description="the image files")
    image: bytes | None = Field(None, description="one image file, the same as one under `images`")
    domain: Domain | None = Field(
        None,
        description="what the lines say (default: the model's); the answer's `domain` tells which was used",
    )


class CorrectionForm(BaseModel):
    """multipart/form-data: one line image and its checked text."""

    image: bytes = Field(description="the line image")
    text: str = Field(description="what the line says")


class SamplesQuery(BaseModel):
    n: int = Field(3, ge=1, description="how many samples, at most the server's `max_files`")
