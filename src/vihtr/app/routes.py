"""The web app's routes: the page, the reading API, reviewed lines and samples. Each answer is built from
its model in `vihtr.app.schemas`, and each route notes its operation for the generated OpenAPI document.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request, send_file, send_from_directory, url_for
from werkzeug.exceptions import BadRequest, NotFound, UnsupportedMediaType

import vihtr
from vihtr.app.openapi import documented, failure, openapi_spec, reply
from vihtr.app.schemas import (
    ConfidenceInfo,
    CorrectionForm,
    Health,
    ImagesForm,
    Limits,
    PageItem,
    PagesAnswer,
    PagesFailure,
    PredictAnswer,
    PredictFailure,
    PredictionItem,
    Sample,
    Samples,
    SamplesQuery,
    Saved,
)
from vihtr.app.state import app_state
from vihtr.app.uploads import MAX_NAME_CHARS, checked_uploads, uploaded_files
from vihtr.inference.answers import line_reading, page_reading
from vihtr.inference.domains import DOMAINS, check_domain
from vihtr.inference.pages import PageReader
from vihtr.review.corrections import CorrectionError

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_PAGES = 4  # pages per request: each is tens of lines
LIMITS = (
    "At most {max_files} files, {max_upload_mb:g} MB per request, {max_pixels:,} pixels per image and "
    "{max_request_pixels:,} per request. A file that cannot be read gets an entry with `error`; the request "
    "fails (400/413, with the same entries) only when no file can be read."
)


def files_failures(too_many: str, *answers) -> dict:
    """The failures of a request of image files (`answers`: the entries a 400/413 may carry)."""
    return {
        400: failure("no files, no file is a readable image, or an unknown domain", *answers),
        413: failure(f"{too_many}, request body too large, or no file under the pixel limits", *answers),
        415: failure("the request is not multipart/form-data"),
        503: failure("the models could not be loaded"),
    }


bp = Blueprint("vihtr", __name__)


@bp.get("/")
@documented(
    "The web page (HTML): read sample or uploaded lines and pages, review and correct them",
    responses={200: reply("HTML page", media="text/html")},
)
def index():
    return send_from_directory(STATIC_DIR, "index.html", max_age=0)


@bp.get("/favicon.ico")
@documented("The page's icon (SVG)", responses={200: reply("the icon", media="image/svg+xml")})
def favicon():
    return send_from_directory(STATIC_DIR, "favicon.svg", mimetype="image/svg+xml", max_age=86400)


@bp.get("/health")
@documented("Liveness, whether the models are loaded, version and limits", responses={200: reply("", Health)})
def health():
    state = app_state()
    models = state.models
    calibration = getattr(models.predictor, "calibration", None)
    return Health(
        status="ok",
        models_loaded=models.loaded,
        model=models.names,
        model_error=models.error,
        domain=models.domain,
        domains=list(DOMAINS),
        version=vihtr.__version__,
        limits=Limits(**state.limits),
        corrections=state.corrections is not None,
        confidence=ConfidenceInfo(calibrated=calibration is not None, review_below=models.review_below),
    ).model_dump()


@bp.get("/openapi.json")
@documented("This description", responses={200: reply("the OpenAPI 3.1 document", media="application/json")})
def openapi():
    state = app_state()
    if state.openapi is None:  # the app's routes are fixed once it serves: generated once
        state.openapi = openapi_spec(current_app, vihtr.__version__, state.limits)
    return jsonify(state.openapi)


def requested_domain() -> str | None:
    domain = request.form.get("domain") or None
    if domain is not None:
        try:
            check_domain(domain)
        except ValueError as e:
            raise BadRequest(str(e)) from None
    return domain


@dataclass
class FilesRequest:
    """A request of image files, checked from the headers: where every route that reads files starts."""

    start: float
    domain: str | None  # as asked (None: the model's default)
    names: list[str]  # each file's display name
    errors: list[str]  # each file's refusal so far ("" when its header passed)
    images: list[bytes]  # the files that passed
    readable: list[int]  # their positions
    statuses: list[int]  # the HTTP status of each refusal

    @classmethod
    def checked(cls, max_files: int) -> FilesRequest:
        start = time.perf_counter()
        files = uploaded_files(max_files)
        domain = requested_domain()
        return cls(start, domain, *checked_uploads(files, app_state().limits))

    def refuse(self, i: int, error: str) -> str:
        """File `i` could not be read after all: its error, named."""
        self.statuses.append(400)
        return f"{self.names[i]}: {error.removeprefix('<bytes>: ')}"

    def answer(self, key: str, answer, failed, items: list):
        """Every file's entry under `key`; a 4xx when none could be read."""
        models = app_state().models
        total_ms = round((time.perf_counter() - self.start) * 1000, 2)
        if len(self.statuses) == len(items):  # nothing could be read: the request itself failed
            error = "; ".join(item.error for item in items)
            body = failed(error=error, model=models.names, total_ms=total_ms, **{key: items})
            return body.model_dump(), 413 if 413 in self.statuses else 400
        return answer(
            model=models.names, domain=self.domain or models.domain, total_ms=total_ms, **{key: items}
        ).model_dump()


@bp.post("/api/predict")
@documented(
    "Read the text of one or more line images",
    description="multipart/form-data with the images under the field `images` (or `image`). " + LIMITS,
    form=ImagesForm,
    responses={
        200: reply("one entry per image, in upload order (unreadable ones with `error`)", PredictAnswer),
        **files_failures("too many files or form parts", PredictFailure),
    },
)
def predict():
    models = app_state().models
    req = FilesRequest.checked(app_state().limits["max_files"])
    items = [PredictionItem(name=name, error=error) for name, error in zip(req.names, req.errors)]
    review_below = models.review_below
    for i, p in zip(req.readable, models.predict(req.images, req.domain)):
        items[i] = line_reading(p, review_below, PredictionItem, name=req.names[i])
        if items[i].error:  # the header was fine but the data is not (corrupt, truncated)
            items[i].error = req.refuse(i, p.error)
    return req.answer("predictions", PredictAnswer, PredictFailure, items)


@bp.post("/api/pages")
@documented(
    "Read whole handwritten pages: find the lines, read them top to bottom",
    description=f"multipart/form-data with up to {MAX_PAGES} page images under the field `images` (or "
    "`image`). Size and pixel limits as for /api/predict: {max_upload_mb:g} MB per request, {max_pixels:,} "
    "pixels per image.",
    form=ImagesForm,
    responses={
        200: reply("one entry per page, in upload order (unreadable ones with `error`)", PagesAnswer),
        **files_failures(f"more than {MAX_PAGES} pages", PagesFailure),
    },
)
def pages():
    state = app_state()
    req = FilesRequest.checked(MAX_PAGES)
    items = [PageItem(name=name, error=error) for name, error in zip(req.names, req.errors)]
    state.models.load()
    review_below = state.models.review_below
    reader = PageReader(state.models, max_pixels=state.limits["max_pixels"])
    for i, result in zip(req.readable, reader.read_many(req.images, req.domain)):
        if result.error:
            items[i] = PageItem(name=req.names[i], error=req.refuse(i, result.error))
        else:
            items[i] = page_reading(result, review_below, PageItem, name=req.names[i])
    return req.answer("pages", PagesAnswer, PagesFailure, items)


@bp.post("/api/corrections")
@documented(
    "Save one reviewed line (image + checked text) to the server's training set",
    description="Only when the server runs with `--corrections-dir DIR`: the image is saved under a name the "
    "server chooses and the text (made NFC) in DIR/labels.tsv; saving the same image again replaces its text.",
    form=CorrectionForm,
    responses={
        200: reply("saved", Saved),
        400: failure("no image or text, not an image, an empty text, or characters the model cannot learn"),
        404: failure("the server saves no corrections (no --corrections-dir)"),
        413: failure("the image is over the size or pixel limit"),
        415: failure("the request is not multipart/form-data"),
        507: failure("the folder holds its limit of lines"),
    },
)
def save_correction():
    corrections = app_state().corrections
    if corrections is None:
        raise NotFound("this server saves no corrections: start it with --corrections-dir DIR")
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data with the fields 'image' (a file) and 'text'")
    image = request.files.get("image")
    if image is None:
        raise BadRequest("no image: send the line image under the field 'image'")
    if "text" not in request.form:
        raise BadRequest("no text: send the line's checked text under the field 'text'")
    try:
        saved = corrections.add(image.read(), request.form["text"])
    except CorrectionError as e:
        return jsonify(error=str(e)), e.status
    return Saved(
        saved=saved.key, text=saved.text, replaced=saved.replaced, lines=len(corrections)
    ).model_dump()


@bp.get("/api/samples")
@documented(
    "Random sample line images from the server's samples folder",
    query=SamplesQuery,
    responses={200: reply("up to n distinct samples", Samples), 400: failure("n is not an integer in range")},
)
def sample_list():
    state = app_state()
    max_files = state.limits["max_files"]
    raw = request.args.get("n", str(SamplesQuery.model_fields["n"].default))
    try:
        n = int(raw)
    except ValueError:
        raise BadRequest(f"n must be an integer, got {raw!r}") from None
    if not 1 <= n <= max_files:
        raise BadRequest(f"n must be between 1 and {max_files}, got {n}")
    names = state.samples.choose(n)
    return Samples(
        samples=[Sample(name=name, url=url_for(".sample_image", name=name)) for name in names]
    ).model_dump()


@bp.get("/api/samples/<path:name>")
@documented(
    "One sample image, by the name /api/samples gave",
    responses={200: reply("the image", media="image/*"), 404: failure("no such sample")},
)
def sample_image(name: str):
    path = app_state().samples.find(name)
    if path is None:
        raise NotFound(f"no such sample: {name[:MAX_NAME_CHARS]}")
    return send_file(path, max_age=3600)
