"""The visual encoder: a timm CNN read as a sequence of image columns.

The backbone is cut after its stride-32 stage. Its last downsampling steps are changed to halve only
the height, so the width is divided by `width_stride` (8, 4 or 2: enough columns per character for a long
handwritten line) while the height shrinks to a few rows that are averaged away. Any timm backbone that
supports `features_only` works; the stride surgery finds the downsampling layers by running the network
once, not by knowing its layout.
"""

from __future__ import annotations

import math

import timm
import torch
import torch.nn.functional as F
from torch import nn

from vihtr.data.preprocess import PAD_VALUE
from vihtr.models.layers import BiLSTMLayer, EncoderLayer, key_padding_to_attn_mask, sinusoidal_positions

_STRIDED_TYPES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
# Blank paper appended to every batch. Alone, an image ends at the CNN's zero padding; in a batch it ends
# at paper padding; the edge columns then differ enough to change the last characters read. With a
# margin of paper both cases look alike near the text (measured: line-end probabilities moved by up
# to 0.12 without it, 0.01 with it). The margin columns are masked like any padding.
PAPER_MARGIN = 32
# sequence context over the columns before the heads: self-attention layers or BiLSTM layers
CONTEXTS = ("transformer", "lstm")


def _as_pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def keep_width_in_last_downsamplings(net: nn.Module, in_chans: int, steps: int) -> None:
    """Make the last `steps` downsampling steps of `net` stride (2, 1) instead of (2, 2), in place.

    One probe forward records every layer that halves the width together with the width it receives;
    layers that receive the same width belong to the same downsampling step (a residual block strides
    both its main branch and its shortcut), so whole steps are changed together.
    """
    if steps <= 0:
        return
    seen: list[tuple[int, nn.Module]] = []

    def record(module, inputs, _output):
        seen.append((inputs[0].shape[-1], module))

    hooks = [
        m.register_forward_hook(record)
        for m in net.modules()
        if isinstance(m, _STRIDED_TYPES) and _as_pair(m.stride)[1] == 2
    ]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, in_chans, 64, 256))
    net.train(was_training)
    for h in hooks:
        h.remove()
    widths = sorted({w for w, _ in seen}, reverse=True)
    if len(widths) < steps:
        raise ValueError(f"backbone has {len(widths)} width downsamplings, cannot undo {steps}")
    last = set(widths[-steps:])
    for w, module in seen:
        if w in last:
            module.stride = (_as_pair(module.stride)[0], 1)


class CNNEncoder(nn.Module):
    """Images B x C x H x W (+ true widths) -> memory B x T x d_model and a padding mask B x T.

    `memory_mask` is True at padded columns (PyTorch's key-padding convention): column t of image i is
    real when t < ceil(widths[i] / width_stride). T = ceil((W + PAPER_MARGIN) / width_stride).
    With `column_upsample` k the CNN runs at stride k x width_stride and each of its columns becomes k
    output columns (a learned split after the context layers).
    """

    def __init__(
        self,
        backbone: str = "tf_efficientnetv2_b1",
        in_chans: int = 1,
        d_model: int = 256,
        width_stride: int = 8,
        encoder_layers: int = 0,
        context: str = "transformer",
        column_upsample: int = 1,
        nhead: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
        probe = timm.create_model(backbone, pretrained=False, features_only=True, in_chans=in_chans)
        reductions = probe.feature_info.reduction()
        # the deepest stage with stride <= 32 (some backbones also offer stride 64)
        index = max(i for i, r in enumerate(reductions) if r <= 32)
        reduction = reductions[index]
        cnn_stride = width_stride * column_upsample
        steps = math.log2(reduction / cnn_stride)
        if cnn_stride > reduction or not steps.is_integer():
            raise ValueError(
                f"width_stride x column_upsample must be a power of two <= {reduction}, got {cnn_stride}"
            )
        self.backbone = timm.create_model(
            backbone, pretrained=False, features_only=True, in_chans=in_chans, out_indices=(index,)
        )
        keep_width_in_last_downsamplings(self.backbone, in_chans, int(steps))
        self.width_stride = width_stride
        self.cnn_stride = cnn_stride
        self.d_model = d_model
        self.proj = nn.Linear(self.backbone.feature_info.channels()[-1], d_model)
        self.drop = nn.Dropout(dropout)
        self.context = context
        if context == "lstm":
            self.layers = nn.ModuleList(BiLSTMLayer(d_model, dropout) for _ in range(encoder_layers))
        else:
            self.layers = nn.ModuleList(
                EncoderLayer(d_model, nhead, ffn_dim, dropout) for _ in range(encoder_layers)
            )
        # each CNN column split into `column_upsample` output columns: CTC gets the columns of a finer
        # stride (two per character and more) for the cost of the coarser CNN
        self.column_upsample = column_upsample
        self.upsample = nn.Linear(d_model, column_upsample * d_model) if column_upsample > 1 else None
        self.norm = nn.LayerNorm(d_model)

    @property
    def cnn_channels(self) -> int:
        return self.proj.in_features

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.contextualise(self.columns(images), widths)

    def columns(self, images: torch.Tensor) -> torch.Tensor:
        """The CNN's view of a batch: B x T x C columns at `cnn_stride`, the height pooled away."""
        images = F.pad(images, (0, PAPER_MARGIN), value=PAD_VALUE)
        features = self.backbone(images)[-1]  # B x C x H' x T
        return features.mean(dim=2).transpose(1, 2)

    def contextualise(self, columns: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CNN columns -> memory B x T' x d_model (context layers, column split) and its padding mask."""
        t = columns.shape[1]
        device = columns.device
        memory = self.proj(columns)
        if self.context == "transformer":  # an LSTM knows where it is; attention needs to be told
            memory = memory + sinusoidal_positions(t, self.d_model, device=device).to(columns.dtype)
        memory = self.drop(memory)
        widths = widths.to(device)
        cnn_lengths = torch.div(widths + (self.cnn_stride - 1), self.cnn_stride, rounding_mode="floor")
        if self.context == "lstm":
            for layer in self.layers:
                memory = layer(memory, cnn_lengths.clamp(max=t))
        else:
            cnn_mask = torch.arange(t, device=device)[None, :] >= cnn_lengths[:, None]
            attn_mask = key_padding_to_attn_mask(cnn_mask)
            for layer in self.layers:
                memory = layer(memory, attn_mask)
        if self.upsample is not None:
            b = memory.shape[0]
            t = t * self.column_upsample
            memory = self.upsample(memory).reshape(b, t, self.d_model)
        lengths = torch.div(widths + (self.width_stride - 1), self.width_stride, rounding_mode="floor")
        memory_mask = torch.arange(t, device=device)[None, :] >= lengths[:, None]
        return self.norm(memory), memory_mask


def tile_column_split(state: dict[str, torch.Tensor], encoder: CNNEncoder, prefix: str = "encoder.") -> None:
    """Fit another run's column split into `encoder`, in place: a model whose CNN runs at a coarser stride
    (more output columns per CNN column, `column_upsample` k' = m x k) starts with each CNN column split as
    the source split m of its columns, which the new CNN column now covers."""
    if encoder.upsample is None:
        return
    for name, target in encoder.upsample.state_dict().items():
        key = prefix + "upsample." + name
        source = state.get(key)
        if source is None or source.shape == target.shape:
            continue
        repeats, rest = divmod(target.shape[0], source.shape[0])
        if rest or source.shape[1:] != target.shape[1:]:
            raise ValueError(f"{key}: cannot fit {tuple(source.shape)} into {tuple(target.shape)}")
        state[key] = source.repeat(repeats, *([1] * (source.dim() - 1)))
