"""Read text lines from images with one or more released models.

`Predictor` hides everything between an image and its text: loading (paths, PIL images, numpy arrays,
bytes; a large image is reduced while it is decoded), the release's own `Preprocess` (exactly the training
preprocessing), batching lines of the same padded width together (so a line reads the same in any batch),
decoding (one model, or an ensemble decoded in lock step), and turning token ids into
NFC text with confidences. An input that cannot be read gives `Prediction(error=...)`; the rest of the
batch goes on.

Confidence: a character's confidence is the probability the model gave to that character when it was
chosen (the ensemble's averaged probability for an ensemble). A line's raw confidence is the geometric
mean of its characters' probabilities (an empty line gets exp(score) of its search: the end token's
probability; for CTC the mean column one). A release that carries a calibration (`metadata.calibration`,
fitted on held-out lines by `scripts/release.py calibrate`) maps it to the expected share of the line's
characters read right; an ensemble, whose raw values no single calibration fits, reports the raw value.

    from vihtr.inference.predictor import Predictor
    predictor = Predictor.from_release("models/vihtr-lite1")
    print(predictor.predict_one("line.jpg").text)

Domain (`vihtr.inference.domains`): `general` reads a line as the model does; `address` decodes CTC with
beam search and an address word n-gram, then checks the address tail against the administrative-unit
tree; `auto` does so only for lines whose plain reading ends like an address. A release states its
default (`metadata.domain`); `predict(images, domain=...)` picks per call.
"""

from __future__ import annotations

import math
import os
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import torch

from vihtr.data.preprocess import WIDTH_BUCKET, ImageLoadError, Preprocess, bucket_width, load_image, to_width
from vihtr.inference.calibration import Calibration
from vihtr.inference.domains import (
    ADDRESS_LM,
    DEFAULT_DOMAIN,
    PROSE_LM,
    AddressDomain,
    ProseDomain,
    Route,
    check_domain,
    routed_decoder,
)
from vihtr.inference.types import BACKENDS, Prediction
from vihtr.models.decoding import check_method
from vihtr.models.release import Release
from vihtr.paths import REPO_ROOT
from vihtr.text.charset import SPECIAL_TOKENS, Charset

MODELS_ENV = "VIHTR_MODELS"


def default_model_paths() -> list[str]:
    """The released models: the folders listed in $VIHTR_MODELS, else those shipped under the repo's `models/`.

    `VIHTR_MODELS` holds model folders, or folders of model folders, separated by the OS path separator.
    """
    env = os.environ.get(MODELS_ENV)
    if env:
        roots = [Path(p) for p in env.split(os.pathsep) if p]
    else:
        roots = [REPO_ROOT / "models", Path.cwd() / "models"]
    found: list[str] = []
    for root in roots:
        candidates = [root] if Release(root).exists() else sorted(root.glob("*/"))
        for folder in candidates:
            if Release(folder).exists() and str(folder.resolve()) not in found:
                found.append(str(folder.resolve()))
    if not found:
        where = f"${MODELS_ENV}={env}" if env else " or ".join(str(r) for r in roots)
        raise FileNotFoundError(
            f"no released model found in {where}: a model folder holds config.json and weights.pt. "
            f"Pass model folders explicitly (--models / paths=...) or set {MODELS_ENV}."
        )
    return found


def resolve_backend(
    backend: str, releases: Sequence[Release | str | os.PathLike], device: str = "cpu"
) -> str:
    """`auto`: onnxruntime on a CPU when every model exports (CTC heads, transformer decoders; it reads the
    shipped model 1.4-1.6x faster than torch, the same text), else torch."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if device != "cpu":
        return "torch"
    releases = [r if isinstance(r, Release) else Release(r) for r in releases]
    decoders = {r.model_config.get("decoder") for r in releases}
    return "onnx" if decoders <= {"transformer", "none"} else "torch"


def to_prediction(
    ids: list[int], probs: list[float], score: float, charset: Charset, calibration: Calibration | None = None
) -> Prediction:
    """One decoded line -> NFC text with per-character and line confidences (see the module docstring)."""
    offset = len(SPECIAL_TOKENS)
    kept = [(charset.chars[i - offset], float(p)) for i, p in zip(ids, probs) if i >= offset]
    raw = "".join(c for c, _ in kept)
    confidences = [p for _, p in kept]
    text = unicodedata.normalize("NFC", raw)
    if len(text) != len(raw):
        # composing changed the length (cannot happen with an NFC charset): keep one value per character
        confidences = [min(confidences)] * len(text)
    if confidences:
        line = math.exp(sum(math.log(max(p, 1e-30)) for p in confidences) / len(confidences))
    else:
        line = math.exp(score)
    if calibration is not None:
        line = calibration(line)
    return Prediction(text=text, confidence=min(1.0, max(0.0, line)), char_confidences=confidences)


LINE_ASPECT = 4  # an image narrower than 4 times its height may hold several lines: it is looked at as a page
SIDEWAYS_ASPECT = 2.5  # an image this much taller than wide is a line photographed sideways (or a page)
PAGE_LOOK_HEIGHT = 400  # an image that may be a page is looked at reduced to no less than twice this height
CUT_AS_LINE = "vihtr.cut_as_line"  # PIL `info` key the page reader sets on the lines it cuts out of a page


def _cut_as_line(image) -> bool:
    return bool(getattr(image, "info", {}).get(CUT_AS_LINE))


def not_a_line(image, turn: int = 0) -> str:
    """A warning when an image holds several lines of writing (a page), "" when it holds one or none. Its
    reading is then not to be trusted: the line reader reads one line."""
    from vihtr.inference.layout import find_lines
    from vihtr.inference.orientation import turned

    try:
        if hasattr(image, "seek"):  # a file object the line's own decoding has read to its end
            image.seek(0)
        # looked at no larger than needed to count lines: a huge upload costs one reduced decode, not a page's
        count = len(find_lines(turned(load_image(image, target_height=PAGE_LOOK_HEIGHT), turn)))
    except Exception:  # the line itself was readable: a failed second look must not cost its reading
        return ""
    if count < 2:
        return ""
    return (
        f"the image holds {count} lines of writing, not one: read it as a page (vihtr pages, POST /api/pages)"
    )


def source_name(image) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else ""


class Predictor:
    """Images -> `Prediction`s with one model or an ensemble. Build it with `Predictor.from_release`."""

    def __init__(
        self,
        decoder,
        preprocesses: Sequence[Preprocess],
        charset: Charset,
        method: str | None = None,
        beam_size: int = 4,
        batch_size: int = 16,
        width_bucket: int = WIDTH_BUCKET,
        calibration: Calibration | None = None,
        domain: str = DEFAULT_DOMAIN,
        address_lm: str | os.PathLike | None = ADDRESS_LM,
        prose_lm: str | os.PathLike | None = PROSE_LM,
    ) -> None:
        """`decoder(batches: list[(images, widths)], method, beam_size) -> DecodeResult`, one batch per model
        (`vihtr.inference.ensemble.EnsembleDecoder`); `preprocesses` holds each model's preprocessing.
        `width_bucket`: lines are padded to a multiple of it and batched only with lines of the same padded
        width, so a line reads the same alone or in any batch. `calibration` maps the model's raw line
        confidence to a calibrated one (see `vihtr.inference.calibration`). `domain`: the default of
        `predict`; `address_lm`: the address domain's word n-gram (None: no beam search, tail check only);
        `prose_lm`: the prose domain's syllable n-gram (None: `prose` reads as `general`)."""
        # None: the models' own; an unknown method, or one they cannot decode with, is refused here, before any
        # image is read (a decoder without `resolve_method` reads greedily by default)
        resolve = getattr(decoder, "resolve_method", None)
        method = resolve(method) if resolve is not None else check_method(method or "greedy")
        self.decoder = decoder
        self.preprocesses = list(preprocesses)
        self.charset = charset
        self.method = method
        self.beam_size = beam_size
        self.batch_size = max(1, batch_size)
        self.width_bucket = max(1, width_bucket)
        self.calibration = calibration
        self.domain = check_domain(domain)
        self.address_lm = address_lm
        self.prose_lm = prose_lm
        self._address: AddressDomain | None = None
        self._prose: ProseDomain | None = None
        self.load_height = max(pre.height for pre in self.preprocesses)
        # grey models get their JPEGs decoded straight to grey (half a line's decoding time)
        self.load_mode = "L" if all(pre.channels == 1 for pre in self.preprocesses) else "RGB"

    @classmethod
    def from_release(
        cls,
        paths: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        device: str = "cpu",
        threads: int | None = None,
        method: str | None = None,
        beam_size: int = 4,
        batch_size: int = 16,
        backend: str = "torch",
        onnx_cache: str | os.PathLike | None = None,
        domain: str | None = None,
        address_lm: str | os.PathLike | None = ADDRESS_LM,
        prose_lm: str | os.PathLike | None = PROSE_LM,
    ) -> Predictor:
        """Load released model folders (default: `default_model_paths()`); two or more decode as an ensemble.

        `backend="onnx"` runs the exported graphs with onnxruntime (exported on first use into `onnx_cache`,
        default `<release>/onnx/`); `"auto"`: onnx where the models export (`resolve_backend`); `threads`
        sets torch's intra-op threads, or onnxruntime's with the onnx backend (which sets torch's to one).
        `method=None` takes the decoding the first release recommends (`Release.decode_method`, else the
        model's own); `domain=None` the first release's default domain (`Release.domain`, else general).
        """
        if paths is None:
            paths = default_model_paths()
        elif isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise ValueError("no model paths given")
        releases = [Release(path).opened() for path in paths]  # each config.json read once
        backend = resolve_backend(backend, releases, device)
        if method is None:  # the first release's recommendation, else the models' own
            method = next((r.decode_method for r in releases if r.decode_method), None)
        if backend == "onnx":
            # torch only post-processes here (CTC best path on a few thousand columns); with more threads its
            # idle OpenMP workers spin on the cores onnxruntime needs: the fast model read a line in 17.5 ms
            # with one torch thread against 22-27 ms with two (2 cores)
            torch.set_num_threads(1)
        elif threads:
            torch.set_num_threads(threads)
        models, preprocesses = [], []
        for release in releases:
            if backend == "onnx":
                from vihtr.inference.onnx_export import OnnxModel

                model, preprocess = OnnxModel.from_release(
                    release.folder, cache_dir=onnx_cache, threads=threads
                )
            else:
                model, preprocess, _ = release.load(device=device)
                model = model.float().eval()  # fp16 weights run as fp32 on CPU
                # channels-last weights: the CNN's depthwise convolutions run ~10 % faster on an idle CPU
                # and far faster when other processes contend for the cores (oneDNN); outputs agree with
                # the default layout to ~1e-4 (tests/test_predictor.py)
                model.encoder.backbone.to(memory_format=torch.channels_last)
            models.append(model)
            preprocesses.append(preprocess)
        calibration = releases[0].calibration
        return cls.from_models(
            models,
            preprocesses,
            method,
            beam_size=beam_size,
            batch_size=batch_size,
            device=device if backend == "torch" else "cpu",
            # calibrated as one model: an ensemble's confidences are another model's
            calibration=Calibration.from_dict(calibration) if len(releases) == 1 and calibration else None,
            domain=domain or releases[0].domain or DEFAULT_DOMAIN,
            address_lm=address_lm,
            prose_lm=prose_lm,
        )

    @classmethod
    def from_models(
        cls,
        models: Sequence,
        preprocesses: Sequence[Preprocess],
        method: str | None = None,
        device: str = "cpu",
        **kwargs,
    ) -> Predictor:
        """Models in memory (`OCRModel`s in eval mode, e.g. a training checkpoint's) with their preprocessing;
        two or more decode as an ensemble. `kwargs` go to `Predictor(...)`."""
        from vihtr.inference.ensemble import EnsembleDecoder

        decoder = EnsembleDecoder(list(models), device=device)
        return cls(decoder, preprocesses, decoder.charset, method, **kwargs)

    @property
    def address(self) -> AddressDomain:
        """The address domain's decoder and corrector, built on first use (the unit tree takes ~2 s)."""
        if self._address is None:
            self._address = AddressDomain(self.charset, self.address_lm)
        return self._address

    @property
    def review_below(self) -> float | None:
        """The release's review threshold: lines under it are worth checking by hand (None: no calibration)."""
        return self.calibration.review_below if self.calibration is not None else None

    @property
    def prose(self) -> ProseDomain | None:
        """The prose domain's decoder, built on first use; None without a prose LM."""
        if self._prose is None and self.prose_lm is not None:
            self._prose = ProseDomain(self.charset, self.prose_lm)
        return self._prose

    def _ctc_search(self, domain: str, chosen: list[list[Route]]):
        """The CTC search a domain reads with (None: best path) and, for `auto`, its per-line router."""
        if domain == "address":
            return self.address.ctc_decoder()
        if domain == "prose":
            return self.prose.ctc_decoder() if self.prose else None
        if domain == "auto":
            return routed_decoder(self.charset, self.address, self.prose, chosen)
        return None

    def predict_one(self, image, domain: str | None = None) -> Prediction:
        return self.predict([image], domain=domain)[0]

    def _bucketed(self, tensor: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
        """Right-pad a line with blank paper to its width bucket (`vihtr.data.preprocess.bucket_width`)."""
        return to_width(tensor, bucket_width(tensor.shape[-1], preprocess.max_width, self.width_bucket))

    def predict(self, images: Sequence, domain: str | None = None) -> list[Prediction]:
        """Paths, PIL images, numpy arrays or bytes -> one `Prediction` per input, in input order.
        `domain`: one of `vihtr.inference.domains.DOMAINS` (default: the predictor's); each prediction
        says which domain read it (`auto` picks one per line).

        A line's text does not depend on the other inputs: lines are batched only with lines of the same
        padded width, so each row of a batch is computed exactly as it would be alone."""
        domain = check_domain(domain or self.domain)
        address = self.address if domain in ("address", "auto") else None
        # what reads the lines when `auto` makes no per-line choice (no CTC search: the attention decoder
        # reads, and only the tail check is added); prose without its LM or CTC is the plain reading
        used = {"auto": "address"}.get(domain, domain)
        if domain == "prose" and (self.prose_lm is None or self.method != "ctc"):
            used = "general"
        results: list[Prediction | None] = [None] * len(images)
        tensors: dict[int, list[torch.Tensor]] = {}
        load_ms: dict[int, float] = {}
        warnings: dict[int, str] = {}
        sideways_lines: dict[int, object] = {}  # turned 90 degrees to read; 270 is tried after
        unique = list(dict.fromkeys(self.preprocesses))  # models sharing a preprocessing share its tensors
        for i, image in enumerate(images):
            start = time.perf_counter()
            try:
                img = load_image(image, target_height=self.load_height, mode=self.load_mode)
                if img.height > SIDEWAYS_ASPECT * img.width:  # a line photographed sideways: read it turned
                    from vihtr.inference.orientation import turned

                    img = sideways_lines[i] = turned(img, 90)
                if img.width < LINE_ASPECT * img.height and not _cut_as_line(image):
                    warnings[i] = not_a_line(image, turn=90 if i in sideways_lines else 0)
                per_pre = {pre: self._bucketed(pre(img), pre) for pre in unique}
                tensors[i] = [per_pre[pre] for pre in self.preprocesses]
                del img
            except Exception as e:  # whatever a bad input raises, it costs only its own line
                message = str(e) if isinstance(e, ImageLoadError) else f"not a readable image ({e!r})"
                results[i] = Prediction(text="", confidence=0.0, source=source_name(image), error=message)
            load_ms[i] = (time.perf_counter() - start) * 1000
            if results[i] is not None:
                results[i].ms = load_ms[i]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in sorted(tensors):
            groups.setdefault(tuple(t.shape[-1] for t in tensors[i]), []).append(i)
        for key in sorted(groups):
            members = groups[key]
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                t0 = time.perf_counter()
                batches = [
                    (torch.stack([tensors[i][m] for i in chunk]), torch.full((len(chunk),), width))
                    for m, width in enumerate(key)
                ]
                chosen: list[list[Route]] = []
                search = self._ctc_search(domain, chosen) if self.method == "ctc" else None
                result = self.decoder(
                    batches, method=self.method, beam_size=self.beam_size, ctc_decoder=search
                )
                # auto: the first model's choice (an ensemble's models may choose apart)
                routes = chosen[0] if chosen else [None] * len(chunk)
                share = (time.perf_counter() - t0) * 1000 / len(chunk)
                lines = zip(result.token_ids, result.token_probs, result.scores)
                for k, (i, (ids, probs, score)) in enumerate(zip(chunk, lines)):
                    prediction = to_prediction(ids, probs, score, self.charset, self.calibration)
                    if address:
                        prediction = address.postprocess(prediction, routes[k])
                    prediction.domain = routes[k].domain if routes[k] else used
                    prediction.source = source_name(images[i])
                    prediction.ms = load_ms[i] + share
                    if warnings.get(i):
                        prediction.warning, prediction.confidence = warnings[i], 0.0
                    results[i] = prediction
        if sideways_lines:  # which way it was turned: the reading the model is surer of
            from vihtr.inference.orientation import turned

            over = self.predict([turned(img, 180) for img in sideways_lines.values()], domain=domain)
            for i, other in zip(sideways_lines, over):
                if i in warnings and warnings[i]:  # flagged as a page: untrusted whichever way it reads
                    continue
                if not other.error and other.confidence > results[i].confidence:
                    other.source, other.ms = results[i].source, results[i].ms + other.ms
                    results[i] = other
        return results  # type: ignore[return-value]
