"""Hydra glue: OmegaConf resolvers used by the configs, the repository root, and composing a run's config
outside `@hydra.main` (`compose_config`: what `vihtr adapt` and the tests run)."""

from __future__ import annotations

import os

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from vihtr.paths import REPO_ROOT, kalapa_root, vnondb_archive
from vihtr.text.charset import VIETNAMESE_CHARSET, longest_label

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


def with_split(source: DictConfig, split: str) -> DictConfig:
    """A source's config with its `split` set, so training and validation read one definition of each real
    source (`data.sources` in conf/data/default.yaml): `${vihtr.split:${data.sources.kalapa},val}`."""
    node = OmegaConf.to_container(source, resolve=True)
    node.pop("_partial_", None)  # the definition is partial so that it is not built itself
    node["split"] = split
    return OmegaConf.create(node)


def data_workers(most: int) -> int:
    """DataLoader workers that fit the machine: at most `most`, and one core left to the training loop."""
    return max(0, min(int(most), (os.cpu_count() or 1) - 1))


def register_resolvers() -> None:
    resolvers = {
        "vihtr.charset": lambda name: CHARSETS[name],
        "vihtr.split": with_split,
        "vihtr.workers": data_workers,
        "vihtr.longest_label": longest_label,
        "vihtr.precision": auto_precision,
        "vihtr.on_gpu": on_gpu,
        "vihtr.repo_root": lambda: str(REPO_ROOT),
        # the real data's layout under a data root (vihtr.paths)
        "vihtr.kalapa_root": lambda root: str(kalapa_root(root)),
        "vihtr.vnondb_archive": lambda root: str(vnondb_archive(root)),
        # a run that begins `start` steps into a schedule of `total`: the steps it has left
        "vihtr.steps_left": lambda total, start: max(int(total) - int(start), 1),
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()


def compose_config(
    name: str, overrides: list[str], output_dir: str | os.PathLike | None = None
) -> DictConfig:
    """The config `src/<name>.py` would get, as Hydra's `@main` hands it over: the Hydra node set as the
    current HydraConfig (for `${hydra:...}`) and then removed; outputs under `output_dir`."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    if output_dir is not None:
        overrides = [*overrides, f"hydra.run.dir={output_dir}", f"paths.output_dir={output_dir}"]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    return cfg
