"""The web app: a Flask application serving the page, the prediction API and sample images.

One process holds the models, loaded once (at the first request that needs them, or at start with
`preload=True`). Concurrent requests are grouped into shared forward passes by one worker
(`vihtr.app.batching`): on a CPU server parallel forwards only fight over the same cores. Uploads are
checked from their headers (format, pixels per image and per request) and decoded one at a time by the
worker, reduced to the model's line height as they are decoded, so a request of huge images costs one
image's decode. A file that cannot be read gets an error entry of its own; the request fails (4xx) only
when none of its files can be read. Every other error, from a bad request to a bug, answers JSON
`{"error": ...}` with its status code, and the process keeps serving.

With `corrections_dir`, `POST /api/corrections` saves reviewed lines (an image and its checked text) as a
training set (`vihtr.review.corrections.CorrectionStore`); without it that route answers 404.

    from vihtr.app.server import create_app
    app = create_app(model_paths=["models/vihtr-lite1"], samples_dir="../shared/data/kalapa2023/public_test")
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from vihtr.app.batching import BATCH_LINES
from vihtr.app.routes import STATIC_DIR, bp
from vihtr.app.samples import SampleFolder
from vihtr.app.state import EXTENSION, AppState, Models
from vihtr.data.preprocess import DEFAULT_MAX_PIXELS
from vihtr.review.corrections import CorrectionStore

REQUEST_PIXEL_FACTOR = 4  # by default a request may decode as many pixels as 4 images at the per-image limit
MAX_FORM_PARTS = 100  # multipart parts per request: files and fields together

log = logging.getLogger(__name__)


def create_app(
    predictor=None,
    model_paths: Sequence[str] | None = None,
    samples_dir: str | os.PathLike | None = None,
    max_files: int = 16,
    max_upload_mb: float = 10,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_request_pixels: int | None = None,
    predictor_options: dict | None = None,
    preload: bool = False,
    batch_lines: int = BATCH_LINES,
    corrections_dir: str | os.PathLike | None = None,
) -> Flask:
    """The Flask app. `predictor`: anything with `predict(images) -> list[Prediction]` (tests, custom setups);
    without it, `Predictor.from_release(model_paths, **predictor_options)` (default: the shipped models).
    `batch_lines`: lines of concurrent requests read in one call at most (1: one request at a time).
    `samples_dir`: the folder `/api/samples` draws from (default: the samples shipped with the app).
    `corrections_dir`: where `/api/corrections` saves reviewed lines (None: the route is off)."""
    max_request_pixels = max_request_pixels or REQUEST_PIXEL_FACTOR * max_pixels
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.url_map.merge_slashes = False  # "//etc/passwd" must not be rewritten into a valid-looking path
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    app.config["MAX_FORM_PARTS"] = max(MAX_FORM_PARTS, 2 * max_files)
    app.json.ensure_ascii = False
    limits = {
        "max_files": max_files,
        "max_upload_mb": max_upload_mb,
        "max_pixels": max_pixels,
        "max_request_pixels": max_request_pixels,
    }
    corrections = (
        CorrectionStore(
            corrections_dir, max_image_bytes=app.config["MAX_CONTENT_LENGTH"], max_pixels=max_pixels
        )
        if corrections_dir is not None
        else None
    )
    state = AppState(
        Models(predictor, model_paths, predictor_options, batch_lines),
        SampleFolder(samples_dir),
        limits,
        corrections,
    )
    app.extensions[EXTENSION] = state
    if preload:
        state.models.load()

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        message = e.description
        if isinstance(e, NotFound) and message == NotFound.description:  # an unknown route
            message = f"not found: {request.path}"
        elif isinstance(e, RequestEntityTooLarge) and message == RequestEntityTooLarge.description:
            if (request.content_length or 0) > app.config["MAX_CONTENT_LENGTH"]:
                message = f"request body over the limit of {max_upload_mb:g} MB"
            else:  # werkzeug refuses a form of more parts than MAX_FORM_PARTS with the same exception
                message = f"too many form parts: at most {app.config['MAX_FORM_PARTS']} files and fields"
        response = jsonify(error=message)
        for name, value in e.get_headers():  # e.g. Allow on 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, e.code

    @app.errorhandler(Exception)
    def server_error(e: Exception):
        reference = uuid.uuid4().hex[:12]
        log.exception("error %s while serving %s %s", reference, request.method, request.path)
        message = (
            f"the server failed on this request (not your input); it is logged under reference {reference}"
        )
        return jsonify(error=message, reference=reference), 500

    @app.after_request
    def security_headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
            "object-src 'none'; frame-ancestors 'none'"
        )
        return response

    app.register_blueprint(bp)
    return app
