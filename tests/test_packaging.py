"""The install story: pins that keep CUDA out, environment.yml in step, torchvision importable on CPU torch."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = []
    for name in ("core", "train", "dev"):
        for line in (REPO / "requirements" / f"{name}.txt").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                lines.append(line)
    return lines


def test_torch_pins_keep_cuda_builds_out():
    reqs = _requirements()
    assert "torch==2.13.0" in reqs and "torchvision==0.28.0" in reqs


def test_environment_yml_lists_the_same_pip_dependencies():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [p for p in pip if p != "-e ."] == _requirements()


def test_torchvision_timm_torchmetrics_lightning_import_on_cpu_torch():
    import pytorch_lightning
    import timm
    import torchmetrics
    import torchvision

    import vihtr  # noqa: F401  (registers the missing torchvision operator schemas where needed)

    assert timm.create_model("tf_efficientnetv2_b1", pretrained=False, num_classes=0) is not None
    assert torchmetrics.text.CharErrorRate()(["ab"], ["ac"]).item() == 0.5
    assert torchvision.__version__.startswith("0.28") and pytorch_lightning.__version__
