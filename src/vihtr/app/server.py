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

import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from flask import Flask, jsonify, request, send_file, send_from_directory, url_for
from PIL import Image
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)

import vihtr
from vihtr.app.batching import BATCH_LINES, BatchQueue
from vihtr.app.openapi import openapi_spec
from vihtr.app.samples import SampleFolder
from vihtr.data.preprocess import DEFAULT_MAX_PIXELS
from vihtr.inference.domains import DOMAINS, check_domain
from vihtr.inference.pages import PageReader, page_json
from vihtr.inference.types import Prediction, prediction_json
from vihtr.review.corrections import CorrectionError, CorrectionStore

STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_FIELDS = ("images", "image")
# formats a browser or a scanner produces; others (EPS, PDF...) would hand the bytes to more decoders
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
REQUEST_PIXEL_FACTOR = 4  # by default a request may decode as many pixels as 4 images at the per-image limit
MAX_FORM_PARTS = 100  # multipart parts per request: files and fields together
DEFAULT_SAMPLES = 3
MAX_NAME_CHARS = 200
MAX_PAGES = 4  # pages per request: each is tens of lines

log = logging.getLogger(__name__)


class Models:
    """The predictor behind the API: loaded once, at first use; concurrent calls are batched together."""

    def __init__(
        self,
        predictor=None,
        model_paths: Sequence[str] | None = None,
        predictor_options=None,
        batch_lines: int = BATCH_LINES,
    ) -> None:
        self._predictor = predictor
        self._paths = list(model_paths) if model_paths else None
        self._options = dict(predictor_options or {})
        self._load_lock = threading.Lock()
        self._queue = BatchQueue(self._predict_now, max_lines=batch_lines)
        self.names: list[str] = [type(predictor).__name__] if predictor is not None else []
        self.error = ""

    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    @property
    def predictor(self):
        """The loaded predictor, or None before the first load."""
        return self._predictor

    def load(self):
        with self._load_lock:
            if self._predictor is None:
                from vihtr.inference.predictor import Predictor, default_model_paths

                try:
                    paths = self._paths or default_model_paths()
                    self._predictor = Predictor.from_release(paths, **self._options)
                except Exception as e:  # any loading failure is reported, the server keeps serving
                    # model folders by name only: the server's directory layout is not the client's business
                    message = str(e)
                    for path in self._paths or []:
                        message = message.replace(str(Path(path).resolve()), Path(path).name)
                        message = message.replace(str(path), Path(path).name)
                    self.error = f"{type(e).__name__}: {message}"
                    log.exception("could not load the models")
                    raise ServiceUnavailable(f"the models could not be loaded: {self.error}") from e
                # one blank line through the whole path, so the first user does not pay torch's warm-up
                self._predictor.predict([Image.new("RGB", (256, 64), "white")])
                self.names = [Path(p).name for p in paths]
                self.error = ""
                log.info("models loaded: %s", ", ".join(str(p) for p in paths))
        return self._predictor

    def _predict_now(self, images: list, domain: str | None) -> list:
        if domain is None:  # a custom predictor (tests) need not know domains
            return self._predictor.predict(images)
        return self._predictor.predict(images, domain=domain)

    @property
    def review_below(self) -> float | None:
        """The release's review threshold (None: no calibration, or no predictor loaded yet)."""
        return getattr(self._predictor, "review_below", None)

    @property
    def domain(self) -> str | None:
        """The predictor's default domain (None for a predictor without domains)."""
        return getattr(self._predictor, "domain", None)

    def predict(self, images: list, domain: str | None = None) -> list:
        self.load()
        return self._queue(images, domain)


def check_upload(data: bytes, max_pixels: int) -> int:
    """An upload's header, before anything is decoded: a format we accept and a pixel count under the
    limit. Returns the pixel count; raises `UploadError` (message, HTTP status) otherwise."""
    if not data:
        raise UploadError("empty file", 400)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise UploadError(f"image is over the limit of {max_pixels:,} pixels", 413) from None
    except Exception:
        raise UploadError(f"not an image in a supported format ({', '.join(ALLOWED_FORMATS)})", 400) from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise UploadError(
            f"image of {image.width}x{image.height} pixels is over the limit of {max_pixels:,}", 413
        )
    return pixels


class UploadError(ValueError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def upload_name(filename: str | None, index: int) -> str:
    """A display name: control characters out (a CR/LF must not reach a log line or a header), length capped."""
    name = "".join(c for c in (filename or "") if c.isprintable()).strip()
    return (name or f"image-{index + 1}")[:MAX_NAME_CHARS]


def uploaded_files(max_files: int) -> list:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"send multipart/form-data with the images under the field 'images' (got {request.mimetype or 'no content type'})"
        )
    files = [f for field in UPLOAD_FIELDS for f in request.files.getlist(field)]
    if not files and any(field in request.form for field in UPLOAD_FIELDS):
        raise BadRequest(
            "the field 'images' came as text, not as a file: its part header has no valid filename "
            "(a file name with a line break breaks the header); send each image as a file part"
        )
    if not files:
        raise BadRequest("no files: send one or more images under the field 'images'")
    if len(files) > max_files:
        raise RequestEntityTooLarge(f"{len(files)} files sent, at most {max_files} per request")
    return files


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
    models = Models(predictor, model_paths, predictor_options, batch_lines)
    samples = SampleFolder(samples_dir)
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
    app.extensions["vihtr"] = {
        "models": models,
        "samples": samples,
        "limits": limits,
        "corrections": corrections,
    }
    if preload:
        models.load()

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

    @app.get("/")
    def index():
        return send_from_directory(STATIC_DIR, "index.html", max_age=0)

    @app.get("/health")
    def health():
        body = {
            "status": "ok",
            "models_loaded": models.loaded,
            "model": models.names,
            "domain": models.domain,
            "domains": list(DOMAINS),
            "version": vihtr.__version__,
            "limits": limits,
            "corrections": corrections is not None,
        }
        calibration = getattr(models.predictor, "calibration", None)
        body["confidence"] = {"calibrated": calibration is not None, "review_below": models.review_below}
        if models.error:
            body["model_error"] = models.error
        return jsonify(body)

    @app.get("/openapi.json")
    def openapi():
        return jsonify(
            openapi_spec(vihtr.__version__, max_files, max_upload_mb, max_pixels, max_request_pixels)
        )

    def requested_domain() -> str | None:
        domain = request.form.get("domain") or None
        if domain is not None:
            try:
                check_domain(domain)
            except ValueError as e:
                raise BadRequest(str(e)) from None
        return domain

    def checked_uploads(files) -> tuple[list[dict], list[bytes], list[int], list[int]]:
        """Each file's answer so far ({"name"}, or with "error"), the readable images' bytes, their positions,
        and the HTTP status of each refused file."""
        names = [upload_name(f.filename, i) for i, f in enumerate(files)]
        items: list[dict] = [{"name": name} for name in names]
        images, readable, statuses = [], [], []
        budget = max_request_pixels
        for i, f in enumerate(files):
            try:
                data = f.read()
                pixels = check_upload(data, max_pixels)
                if pixels > budget:
                    raise UploadError(
                        f"over this request's pixel budget ({max_request_pixels:,} pixels "
                        "in all): send it in another request",
                        413,
                    )
                budget -= pixels
                images.append(data)
                readable.append(i)
            except UploadError as e:
                items[i]["error"] = f"{names[i]}: {e}"
                statuses.append(e.status)
        return items, images, readable, statuses

    def answered(key: str, items: list[dict], statuses: list[int], domain: str | None, start: float):
        """The answer to a request of files: every file's entry under `key`; a 4xx when none could be read."""
        total_ms = round((time.perf_counter() - start) * 1000, 2)
        if len(statuses) == len(items):  # nothing could be read: the request itself failed
            status = 413 if 413 in statuses else 400
            error = "; ".join(item["error"] for item in items)
            return jsonify({"error": error, key: items, "model": models.names, "total_ms": total_ms}), status
        used = domain or models.domain
        return jsonify({key: items, "model": models.names, "domain": used, "total_ms": total_ms})

    @app.post("/api/predict")
    def predict():
        start = time.perf_counter()
        files = uploaded_files(max_files)
        domain = requested_domain()
        items, images, readable, statuses = checked_uploads(files)
        names = [item["name"] for item in items]
        review_below = models.review_below
        for i, p in zip(readable, models.predict(images, domain)):
            answer = prediction_json(p, review_below)
            if answer.pop("error"):  # the header was fine but the data is not (corrupt, truncated)
                items[i]["error"] = f"{names[i]}: {p.error.removeprefix('<bytes>: ')}"
                statuses.append(400)
            items[i].update(answer)
        unread = {k: v for k, v in prediction_json(Prediction("", 0.0)).items() if k != "error"}
        for item in items:
            if "error" in item:
                for key, value in unread.items():
                    item.setdefault(key, value)
        return answered("predictions", items, statuses, domain, start)

    @app.post("/api/pages")
    def pages():
        """Whole pages (field `images`): each page's lines found, read top to bottom, with their boxes."""
        start = time.perf_counter()
        files = uploaded_files(MAX_PAGES)
        domain = requested_domain()
        items, images, readable, statuses = checked_uploads(files)
        models.load()
        review_below = models.review_below
        for i, result in zip(readable, PageReader(models, max_pixels=max_pixels).read_many(images, domain)):
            answer = page_json(result, review_below)
            answer.pop("path")
            if answer.pop("error"):
                items[i]["error"] = f"{items[i]['name']}: {result.error.removeprefix('<bytes>: ')}"
                statuses.append(400)
            else:
                items[i].update(answer)
        for item in items:
            if "error" in item:
                item.update({"text": "", "lines": []})
        return answered("pages", items, statuses, domain, start)

    @app.post("/api/corrections")
    def save_correction():
        """One reviewed line: the image (field `image`) and its checked text (field `text`)."""
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
        return jsonify(saved=saved.key, text=saved.text, replaced=saved.replaced, lines=len(corrections))

    @app.get("/favicon.ico")
    def favicon():
        return send_from_directory(STATIC_DIR, "favicon.svg", mimetype="image/svg+xml", max_age=86400)

    @app.get("/api/samples")
    def sample_list():
        raw = request.args.get("n", str(DEFAULT_SAMPLES))
        try:
            n = int(raw)
        except ValueError:
            raise BadRequest(f"n must be an integer, got {raw!r}") from None
        if not 1 <= n <= max_files:
            raise BadRequest(f"n must be between 1 and {max_files}, got {n}")
        names = samples.choose(n)
        return jsonify(samples=[{"name": name, "url": url_for("sample_image", name=name)} for name in names])

    @app.get("/api/samples/<path:name>")
    def sample_image(name: str):
        path = samples.find(name)
        if path is None:
            raise NotFound(f"no such sample: {name[:MAX_NAME_CHARS]}")
        return send_file(path, max_age=3600)

    return app
