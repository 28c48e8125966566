"""The ONNX fast path: a released model as two onnxruntime graphs, decoded by the same lock-step searches.

- `encoder.onnx`: images B x C x H x W + widths -> column counts, the CTC log-probs (if the model has a
  CTC head) and every decoder layer's cross-attention keys/values of the memory (computed once a line);
- `decoder_step.onnx` (transformer decoders): the newest token + the past self-attention keys/values ->
  next-token log-probs + the extended keys/values. Each step runs the layers on one token only.

The encoder is exported first by the TorchScript exporter (seconds; the dynamo exporter spends many
minutes on the "same" padding of the tf_ EfficientNets) and kept only when onnxruntime matches torch on
batches of other sizes and widths than the traced one; otherwise, and for the decoder step, by
`torch.onnx.export(..., dynamo=True)` with dynamic batch, width and prefix length. The GRU "attention"
decoder is not exported: such a model can only use the ONNX path with `method="ctc"`.

The tf_ EfficientNets pad their strided convolutions TensorFlow's way, computed from each input's shape.
The export fixes those pads (`fix_same_padding`): the height is the release's, and a width that is a
multiple of the CNN's width reduction (`export.json`'s `width_multiple`; `OnnxModel` pads to it, the
predictor's width buckets already are) gives every layer the same pads. The graph then has no shape
arithmetic per convolution, and onnxruntime folds each pad into its convolution.

    from vihtr.inference.onnx_export import export_release
    export_release("models/vihtr-lite1")  # writes models/vihtr-lite1/onnx/
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vihtr.data.preprocess import PAD_VALUE, Preprocess
from vihtr.inference.ensemble import Started
from vihtr.models.decoders import TransformerDecoder, batch_axis
from vihtr.models.release import CONFIG_FILE, WEIGHTS_FILE, Release, load_release
from vihtr.paths import cache_dir
from vihtr.text.charset import Charset

ENCODER_FILE = "encoder.onnx"
STEP_FILE = "decoder_step.onnx"
META_FILE = "export.json"
# in the cache fingerprint: a release exported by an older version of this module is exported again
EXPORT_FORMAT = 2


# the dynamic dimensions of the encoder graph's outputs (mem_k/mem_v: layers x B x heads x columns x dh)
OUTPUT_AXES = {
    "lengths": {0: "batch"},
    "ctc_log_probs": {0: "batch", 1: "columns"},
    "mem_k": {1: "batch", 3: "columns"},
    "mem_v": {1: "batch", 3: "columns"},
}


class EncoderGraph(nn.Module):
    """What runs once per line: the CNN encoder, the CTC head, and the decoder's memory keys/values."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.with_decoder = isinstance(model.decoder, TransformerDecoder)
        self.with_ctc = model.ctc_head is not None

    def output_names(self) -> list[str]:
        return (
            ["lengths"]
            + (["ctc_log_probs"] if self.with_ctc else [])
            + (["mem_k", "mem_v"] if self.with_decoder else [])
        )

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        memory, memory_mask = self.model.encode(images, widths)
        outputs = [(~memory_mask).sum(dim=1)]
        if self.with_ctc:
            outputs.append(F.log_softmax(self.model.ctc_head(memory).float(), dim=-1))
        if self.with_decoder:
            outputs += self.model.decoder.memory_kv(memory)  # layers x B x H x S x dh each
        return tuple(outputs)


class DecoderStepGraph(nn.Module):
    """One transformer decoding step: `TransformerDecoder.step_tensors`, the function torch decoding runs."""

    def __init__(self, decoder: TransformerDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, prev_tokens, past_k, past_v, mem_k, mem_v, mem_attn_mask):
        return self.decoder.step_tensors(prev_tokens, past_k, past_v, mem_k, mem_v, mem_attn_mask)


class FixedPadConv2d(nn.Conv2d):
    """A TF-"same" convolution whose pads (left, right, top, bottom) were fixed for one input geometry."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]) -> None:
        super().__init__(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
            conv.groups, conv.bias is not None,
        )  # fmt: skip
        self.weight, self.bias = conv.weight, conv.bias
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            F.pad(x, self.pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups
        )


def fix_same_padding(model, height: int) -> int:
    """Replace, in place, the encoder's TF-"same" convolutions (`timm` `Conv2dSame`, pads computed from each
    input's shape) by `FixedPadConv2d`s that hold the pads of `height`-px lines whose width is a multiple of
    the CNN's width reduction; returns that multiple. Raises if some pads still depend on the width."""
    from timm.layers import Conv2dSame, get_same_padding

    convs = {name: m for name, m in model.named_modules() if isinstance(m, Conv2dSame)}
    if not convs:
        return 1
    multiple = model.encoder.cnn_stride
    seen: dict[str, set] = {name: set() for name in convs}

    def record(name):
        def hook(conv, inputs):
            h, w = inputs[0].shape[-2:]
            ph = get_same_padding(h, conv.kernel_size[0], conv.stride[0], conv.dilation[0])
            pw = get_same_padding(w, conv.kernel_size[1], conv.stride[1], conv.dilation[1])
            seen[name].add((pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))

        return hook

    hooks = [conv.register_forward_pre_hook(record(name)) for name, conv in convs.items()]
    try:
        with torch.no_grad():
            for width in (16 * multiple, 17 * multiple):  # the deepest map's width even, then odd
                model.encode(torch.zeros(1, model.config["in_chans"], height, width), torch.tensor([width]))
    finally:
        for hook in hooks:
            hook.remove()
    for name, conv in convs.items():
        if len(seen[name]) != 1:
            raise ValueError(f"{name}: its pads depend on the width ({sorted(seen[name])})")
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, FixedPadConv2d(conv, seen[name].pop()))
    return multiple


def _export_traced(module: nn.Module, args: tuple, path: Path, input_names, output_names) -> bool:
    """The TorchScript exporter: batch and width dynamic. True when onnxruntime reads batches of other
    sizes and widths than the traced one as torch does (tracing may bake in a shape-dependent branch)."""
    import onnxruntime as ort

    axes = {"images": {0: "batch", 3: "width"}, "widths": {0: "batch"}} | {
        name: OUTPUT_AXES[name] for name in output_names
    }
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python values
        torch.onnx.export(
            module.eval(), args, str(path), dynamo=False, input_names=input_names,
            output_names=output_names, dynamic_axes=axes, opset_version=17,
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = args[0]
    generator = torch.Generator().manual_seed(0)
    for widths in ([images.shape[-1] + 96, images.shape[-1] - 64, 64], [32], [images.shape[-1] + 512] * 2):
        batch = torch.rand(len(widths), *images.shape[1:-1], max(widths), generator=generator) * 2 - 1
        widths = torch.tensor(widths)
        expected = module(batch, widths)
        got = session.run(None, {"images": batch.numpy(), "widths": widths.numpy()})
        if any(g.shape != e.shape or abs(g - e.numpy()).max() > 1e-3 for g, e in zip(got, expected)):
            return False
    return True


def _export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic_shapes) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter prints its progress
        program = torch.onnx.export(
            module.eval(),
            args,
            dynamo=True,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            verbose=False,
        )
    program.save(str(path))


def export_model(model, preprocess: Preprocess, folder: str | os.PathLike) -> tuple[list[Path], int]:
    """Write the encoder (and decoder-step) graphs of an `OCRModel` into `folder`; returns the files and the
    multiple the encoder's input width must be (`fix_same_padding`)."""
    if (
        model.decoder is not None
        and not isinstance(model.decoder, TransformerDecoder)
        and model.ctc_head is None
    ):
        raise NotImplementedError("the ONNX path supports transformer decoders and CTC heads only")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().eval()  # the caller's model keeps its own padding
    width_multiple = fix_same_padding(model, preprocess.height)
    batch, columns, prefix = (
        torch.export.Dim("batch"),
        torch.export.Dim("columns"),
        torch.export.Dim("prefix"),
    )
    images = torch.zeros(2, preprocess.channels, preprocess.height, 256)
    widths = torch.tensor([256, 160])
    encoder = EncoderGraph(model)
    files = [folder / ENCODER_FILE]
    with torch.no_grad():
        names = ["images", "widths"], encoder.output_names()
        if not _export_traced(encoder, (images, widths), files[0], *names):
            # width: a multiple of 16 between 32 and a few thousand pixels (what Preprocess produces)
            width = 16 * torch.export.Dim("width16", min=2, max=512)
            _export(
                encoder, (images, widths), files[0], *names,
                {"images": {0: batch, 3: width}, "widths": {0: batch}},
            )  # fmt: skip
        if encoder.with_decoder:
            layers, _, heads, n_columns, head_dim = encoder(images, widths)[-1].shape
            past = torch.zeros(layers, 2, heads, 3, head_dim)
            mem_k, mem_v = (torch.randn(layers, 2, heads, n_columns, head_dim) for _ in range(2))
            mask = torch.ones(2, 1, 1, n_columns, dtype=torch.bool)
            files.append(folder / STEP_FILE)
            _export(
                DecoderStepGraph(model.decoder),
                (torch.tensor([1, 1]), past, past.clone(), mem_k, mem_v, mask),
                files[1],
                ["prev_tokens", "past_k", "past_v", "mem_k", "mem_v", "mem_attn_mask"],
                ["log_probs", "new_k", "new_v"],
                {
                    "prev_tokens": {0: batch},
                    "past_k": {1: batch, 3: prefix},
                    "past_v": {1: batch, 3: prefix},
                    "mem_k": {1: batch, 3: columns},
                    "mem_v": {1: batch, 3: columns},
                    "mem_attn_mask": {0: batch, 3: columns},
                },
            )
    return files, width_multiple


def _fingerprint(release: Path) -> str:
    digest = hashlib.sha256(f"format {EXPORT_FORMAT}".encode())
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        digest.update((release / name).read_bytes())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:16]


def default_cache_dir(release: Path) -> Path:
    """`<release>/onnx`, or a per-user cache when the release folder is read-only."""
    if os.access(release, os.W_OK):
        return release / "onnx"
    return cache_dir("onnx", f"{release.name}-{_fingerprint(release)}")


def export_release(
    release: str | os.PathLike, output: str | os.PathLike | None = None, check: bool = True
) -> list[Path]:
    """Export a released model folder (default output `<release>/onnx`); with `check`, compare onnxruntime's
    outputs with torch's on a random batch. Returns the written files."""
    release = Path(release)
    model, preprocess, _ = load_release(release)
    folder = Path(output) if output else default_cache_dir(release)
    files, width_multiple = export_model(model, preprocess, folder)
    meta = {
        "fingerprint": _fingerprint(release),
        "release": str(release.resolve()),
        "width_multiple": width_multiple,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    if check:
        check_export(model, preprocess, folder)
    return files + [folder / META_FILE]


def check_export(model, preprocess: Preprocess, folder: Path, atol: float = 1e-3) -> None:
    """Raise if the ONNX graphs and torch disagree on a random batch (encoder outputs, first two steps)."""
    torch.manual_seed(0)
    images = torch.rand(3, preprocess.channels, preprocess.height, 320) * 2 - 1
    widths = torch.tensor([320, 240, 96])
    onnx_model = OnnxModel(folder, model.charset, model.max_len)
    with torch.inference_mode():
        memory, memory_mask = model.encode(images, widths)
        started = onnx_model.start(images, widths, decoder=onnx_model.has_decoder, ctc=onnx_model.has_ctc)
        if started.ctc_log_probs is not None:
            expected = model.ctc_head(memory).float().log_softmax(-1)
            _assert_close(started.ctc_log_probs, expected, atol, "CTC log-probs")
        if onnx_model.has_decoder:
            state = model.decoder.init_state(memory, memory_mask)
            onnx_state = started.state
            prev = torch.full((3,), 1, dtype=torch.long)
            for _ in range(2):
                expected, state = model.decoder.step(state, prev)
                got, onnx_state = onnx_model.step(onnx_state, prev)
                _assert_close(got, expected, atol, "decoder step log-probs")
                prev = expected.argmax(-1)


def _assert_close(got: torch.Tensor, expected: torch.Tensor, atol: float, what: str) -> None:
    diff = float((got - expected).abs().max())
    if diff > atol:
        raise RuntimeError(f"ONNX export mismatch: {what} differ from torch by {diff:.2e} (> {atol})")


class OnnxModel:
    """A model's exported graphs under onnxruntime, with the `StepModel` methods of the lock-step searches."""

    def __init__(self, folder: str | os.PathLike, charset: Charset, max_len: int, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        # the threads spin while a run hands work between them (the fast model at batch 1: ~14 ms a line
        # against ~18 without), and stop when it ends: left spinning, they took the cores from the CTC
        # decoding (torch) that comes next, up to 20 ms a line on 2 cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        folder = Path(folder)
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=providers)
        step_path = folder / STEP_FILE
        self.decoder_step = (
            ort.InferenceSession(str(step_path), options, providers=providers)
            if step_path.is_file()
            else None
        )
        meta = folder / META_FILE
        # the input width the graph's fixed pads need (`fix_same_padding`); 1 for an older export
        self.width_multiple = json.loads(meta.read_text()).get("width_multiple", 1) if meta.is_file() else 1
        self.encoder_outputs = [o.name for o in self.encoder.get_outputs()]
        self.charset = charset
        self.max_len = max_len
        self.has_decoder = self.decoder_step is not None
        self.has_ctc = "ctc_log_probs" in self.encoder_outputs

    @classmethod
    def from_release(
        cls,
        release: str | os.PathLike,
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> tuple[OnnxModel, Preprocess]:
        """Open a release's ONNX graphs, exporting them first when missing or made from other weights."""
        release = Path(release)
        config = Release(release).config
        folder = Path(cache_dir) / release.resolve().name if cache_dir else default_cache_dir(release)
        meta = folder / META_FILE
        fresh = meta.is_file() and json.loads(meta.read_text())["fingerprint"] == _fingerprint(release)
        if not fresh:
            export_release(release, folder, check=True)
        charset = Charset(config["model"]["charset_chars"])
        model = cls(folder, charset, int(config["model"]["max_len"]), threads)
        return model, Preprocess.from_dict(config["preprocess"])

    def start(self, images: torch.Tensor, widths: torch.Tensor, decoder: bool, ctc: bool) -> Started:
        images = images.float().numpy()
        short = -images.shape[-1] % self.width_multiple
        if short:  # blank paper up to the width the graph was fixed for; the widths mask it
            images = np.pad(images, ((0, 0),) * 3 + ((0, short),), constant_values=PAD_VALUE)
        feed = {"images": images, "widths": widths.numpy().astype(np.int64)}
        outputs = dict(zip(self.encoder_outputs, self.encoder.run(None, feed)))
        lengths = torch.from_numpy(outputs["lengths"])
        started = Started(lengths=lengths)
        if ctc:
            started.ctc_log_probs = torch.from_numpy(outputs["ctc_log_probs"])
        if decoder:
            mem_k = outputs["mem_k"]
            layers, batch, heads, columns, head_dim = mem_k.shape
            past = np.zeros((layers, batch, heads, 0, head_dim), dtype=np.float32)
            mask = np.arange(columns)[None, :] < outputs["lengths"][:, None]
            started.state = {
                "past_k": past,
                "past_v": past,
                "mem_k": mem_k,
                "mem_v": outputs["mem_v"],
                "mem_attn_mask": mask[:, None, None, :],
            }
        return started

    def step(self, state: dict, prev_tokens: torch.Tensor) -> tuple[torch.Tensor, dict]:
        log_probs, new_k, new_v = self.decoder_step.run(
            None, {"prev_tokens": prev_tokens.numpy().astype(np.int64), **state}
        )
        return torch.from_numpy(log_probs), {**state, "past_k": new_k, "past_v": new_v}

    def reorder(self, state: dict, index: torch.Tensor) -> dict:
        rows = index.numpy()
        return {name: np.take(value, rows, axis=batch_axis(name)) for name, value in state.items()}
