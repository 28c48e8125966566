"""What a prediction returns, shared by the predictor, the CLI and the web app."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# how a model runs: torch, onnxruntime, or onnxruntime where the models export (`resolve_backend`)
BACKENDS = ("torch", "onnx", "auto")


@dataclass
class Prediction:
    text: str  # NFC
    confidence: float  # line confidence in [0, 1]
    char_confidences: list[float] = field(default_factory=list)  # one per character of `text`
    ms: float = 0.0  # wall time spent on this line (its share of the batch)
    source: str = ""  # the input's name (path, upload name), "" when unnamed
    error: str = ""  # set instead of text when the input could not be read
    domain: str = ""  # the decoding domain that read it: general, prose or address (auto picks one per line)
    warning: str = ""  # read, but not to be trusted: e.g. the image holds a page, not one line

    def to_dict(self) -> dict:
        return asdict(self)


def prediction_json(prediction, review_below: float | None = None) -> dict:
    """One prediction as the CLI's rows and the API's answers give it: numbers rounded, and `review` (under
    the release's review threshold, or with a warning, so worth checking by hand; False for an unread input).
    The one place that says what a prediction looks like outside Python."""
    confidence = float(prediction.confidence)
    error = getattr(prediction, "error", "") or ""
    return {
        "text": prediction.text,
        "confidence": round(confidence, 4),
        "char_confidences": [round(float(c), 4) for c in prediction.char_confidences],
        "review": bool(
            not error
            and (
                getattr(prediction, "warning", "") or (review_below is not None and confidence < review_below)
            )
        ),
        "domain": getattr(prediction, "domain", "") or "",
        "warning": getattr(prediction, "warning", "") or "",
        "ms": round(float(getattr(prediction, "ms", 0.0)), 2),
        "error": error,
    }
