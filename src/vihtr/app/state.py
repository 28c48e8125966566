"""What one app holds: the models behind it (loaded once, at first use, with concurrent calls batched
together), its samples folder, its limits and its corrections store. The routes reach it through
`app_state()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from PIL import Image
from werkzeug.exceptions import ServiceUnavailable

from vihtr.app.batching import BATCH_LINES, BatchQueue
from vihtr.app.samples import SampleFolder
from vihtr.review.corrections import CorrectionStore

EXTENSION = "vihtr"

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


@dataclass
class AppState:
    models: Models
    samples: SampleFolder
    limits: dict  # max_files, max_upload_mb, max_pixels, max_request_pixels (as `/health` gives them)
    corrections: CorrectionStore | None  # None: the server saves no corrections
    openapi: dict | None = None  # the generated document, once asked for


def app_state() -> AppState:
    return current_app.extensions[EXTENSION]
