"""The web app: a Flask application serving the page, the prediction API and sample images.

One process holds the models, loaded once (at the first request that needs them, or at start with
`preload=True`) and used by one request at a time: on a CPU server parallel forwards only fight over the
same cores. Every error, from a bad upload to a bug, answers JSON `{"error": ...}` with its status code,
and the process keeps serving.

    from vihtr.app.server import create_app
    app = create_app(model_paths=["models/vihtr-lite1"], samples_dir="../shared/data/kalapa2023/public_test")
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
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
from vihtr.app.openapi import openapi_spec
from vihtr.app.samples import SampleFolder
from vihtr.data.preprocess import ImageLoadError, load_image

STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_FIELDS = ("images", "image")
# formats a browser or a scanner produces; others (EPS, PDF...) would hand the bytes to more decoders
ALLOWED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
DEFAULT_MAX_PIXELS = 20_000_000  # a line image is rarely above 4 Mpx; far larger is a decompression bomb
DEFAULT_SAMPLES = 3
MAX_NAME_CHARS = 200

log = logging.getLogger(__name__)


class Models:
    """The predictor behind the API: loaded once, at first use, and called by one request at a time."""

    def __init__(
        self, predictor=None, model_paths: Sequence[str] | None = None, predictor_options=None
    ) -> None:
        self._predictor = predictor
        self._paths = list(model_paths) if model_paths else None
        self._options = dict(predictor_options or {})
        self._load_lock = threading.Lock()
        self._predict_lock = threading.Lock()
        self.names: list[str] = [type(predictor).__name__] if predictor is not None else []
        self.error = ""

    @property
    def loaded(self) -> bool:
        return self._predictor is not None

    def load(self):
        with self._load_lock:
            if self._predictor is None:
                from vihtr.inference.predictor import Predictor, default_model_paths

                try:
                    paths = self._paths or default_model_paths()
                    self._predictor = Predictor.from_release(paths, **self._options)
                except Exception as e:  # any loading failure is reported, the server keeps serving
                    self.error = f"{type(e).__name__}: {e}"
                    log.exception("could not load the models")
                    raise ServiceUnavailable(f"the models could not be loaded: {self.error}") from e
                # one blank line through the whole path, so the first user does not pay torch's warm-up
                self._predictor.predict([Image.new("RGB", (256, 64), "white")])
                self.names = [Path(p).name for p in paths]
                self.error = ""
                log.info("models loaded: %s", ", ".join(str(p) for p in paths))
        return self._predictor

    def predict(self, images: list) -> list:
        predictor = self.load()
        with self._predict_lock:
            return predictor.predict(images)


def read_upload(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Uploaded bytes -> RGB image; the pixel count is checked from the header, before anything is decoded."""
    if not data:
        raise BadRequest(f"{name}: empty file")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise RequestEntityTooLarge(f"{name}: image is over the limit of {max_pixels:,} pixels") from e
    except Exception as e:
        raise BadRequest(f"{name}: not an image in a supported format ({', '.join(ALLOWED_FORMATS)})") from e
    if image.width * image.height > max_pixels:
        raise RequestEntityTooLarge(
            f"{name}: image of {image.width}x{image.height} pixels is over the limit of {max_pixels:,}"
        )
    try:
        image.load()
        return load_image(image, max_pixels)
    except (ImageLoadError, OSError, SyntaxError, ValueError) as e:
        raise BadRequest(f"{name}: corrupt or truncated image ({e})") from e


def uploaded_files(max_files: int) -> list:
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"send multipart/form-data with the images under the field 'images' (got {request.mimetype or 'no content type'})"
        )
    files = [f for field in UPLOAD_FIELDS for f in request.files.getlist(field)]
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
    predictor_options: dict | None = None,
    preload: bool = False,
) -> Flask:
    """The Flask app. `predictor`: anything with `predict(images) -> list[Prediction]` (tests, custom setups);
    without it, `Predictor.from_release(model_paths, **predictor_options)` (default: the shipped models).
    `samples_dir`: the folder `/api/samples` draws from (default: the samples shipped with the app)."""
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    app.url_map.merge_slashes = False  # "//etc/passwd" must not be rewritten into a valid-looking path
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    app.json.ensure_ascii = False
    models = Models(predictor, model_paths, predictor_options)
    samples = SampleFolder(samples_dir)
    limits = {"max_files": max_files, "max_upload_mb": max_upload_mb, "max_pixels": max_pixels}
    app.extensions["vihtr"] = {"models": models, "samples": samples, "limits": limits}
    if preload:
        models.load()

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        message = e.description
        if isinstance(e, NotFound) and message == NotFound.description:  # an unknown route
            message = f"not found: {request.path}"
        elif isinstance(e, RequestEntityTooLarge) and message == RequestEntityTooLarge.description:
            message = f"request body over the limit of {max_upload_mb:g} MB"
        return jsonify(error=message), e.code

    @app.errorhandler(Exception)
    def server_error(e: Exception):
        log.exception("error while serving %s %s", request.method, request.path)
        return jsonify(error=f"internal server error ({type(e).__name__})"), 500

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
            "version": vihtr.__version__,
            "limits": limits,
        }
        if models.error:
            body["model_error"] = models.error
        return jsonify(body)

    @app.get("/openapi.json")
    def openapi():
        return jsonify(openapi_spec(vihtr.__version__, max_files, max_upload_mb, max_pixels))

    @app.post("/api/predict")
    def predict():
        start = time.perf_counter()
        files = uploaded_files(max_files)
        names = [(f.filename or f"image-{i + 1}")[:MAX_NAME_CHARS] for i, f in enumerate(files)]
        images = [read_upload(f.read(), name, max_pixels) for f, name in zip(files, names)]
        results = models.predict(images)
        predictions = []
        for name, p in zip(names, results):
            item = {
                "name": name,
                "text": p.text,
                "confidence": round(float(p.confidence), 4),
                "char_confidences": [round(float(c), 4) for c in p.char_confidences],
                "ms": round(float(p.ms), 2),
            }
            if p.error:
                item["error"] = p.error
            predictions.append(item)
        total_ms = round((time.perf_counter() - start) * 1000, 2)
        return jsonify(predictions=predictions, model=models.names, total_ms=total_ms)

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
