"""Hydra glue: OmegaConf resolvers used by the configs, and the repository root."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from vihtr.paths import REPO_ROOT
from vihtr.text.charset import VIETNAMESE_CHARSET

CONFIG_DIR = REPO_ROOT / "conf"
CHARSETS = {"vietnamese": VIETNAMESE_CHARSET}


def auto_precision() -> str:
    """16-bit mixed precision where the hardware has it (CUDA); fp32 on CPU, where bf16 autocast is slower."""
    if torch.cuda.is_available():
        return "16-mixed"
    return "32-true"


def on_gpu(accelerator: str) -> bool:
    """Whether a trainer with this `accelerator` runs on CUDA (SyncBatchNorm only works there)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def register_resolvers() -> None:
    resolvers = {
        "vihtr.charset": lambda name: CHARSETS[name],
        "vihtr.precision": auto_precision,
        "vihtr.on_gpu": on_gpu,
        "vihtr.repo_root": lambda: str(REPO_ROOT),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
