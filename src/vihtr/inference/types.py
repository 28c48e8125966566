"""What a prediction returns, shared by the predictor, the CLI and the web app (its JSON: `vihtr.inference.answers`)."""

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
