"""What `src/train.py` does: build datamodule, system, callbacks, loggers and trainer from config; fit; test."""

from __future__ import annotations

import logging
import math
import os
import warnings

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from vihtr.training.config import register_resolvers
from vihtr.training.evaluate import evaluate, evaluation_lines, load_predictor

log = logging.getLogger(__name__)


def check_fold(fold) -> None:
    if not (fold == "all" or (isinstance(fold, int) and -1 <= fold <= 4)):
        raise ValueError(f"fold must be 0..4, or 'all' (also -1) to train on every fold, not {fold!r}")


def check_ctc_capacity(cfg: DictConfig) -> None:
    """Refuse a model shape whose CTC head cannot read the longest labels the data keeps.

    CTC emits at most one character per column, and a line at the widest input gets
    ceil(max_width / width_stride) columns; fewer columns than `data.max_label_length` means the longest
    allowed lines can never be read. (The real rule is per line: training logs `train/ctc_infeasible`,
    the share of lines too long for their own width, whose loss is zeroed.)"""
    net = cfg.model.net
    if not net.get("ctc", False):
        return
    columns = math.ceil(cfg.image.max_width / net.width_stride)
    longest = cfg.data.get("max_label_length")
    if longest is not None and columns < longest:
        raise ValueError(
            f"the CTC head gets at most {columns} columns (image.max_width {cfg.image.max_width} / "
            f"model.net.width_stride {net.width_stride}) but data.max_label_length is {longest}: "
            "lower width_stride, raise max_width, or keep shorter labels"
        )


def instantiate_group(cfg: DictConfig | None) -> list:
    """Instantiate every `_target_` entry of a group such as `callbacks` or `logger`."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str) -> str | None:
    if ckpt_path == "last":
        last = os.path.join(output_dir, "checkpoints", "last.ckpt")
        return last if os.path.exists(last) else None
    return ckpt_path


def quiet_known_warnings() -> None:
    """Silence warnings a user cannot act on, each for a stated reason; every other warning stays."""
    # Lightning's own use of a deprecated torch pytree API (pytorch_lightning/utilities/_pytree.py)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # the training stream gives each DataLoader worker (and DDP rank) its own seed and share of the epoch
    # (vihtr.data.datamodule.MixtureStream), which is what this warning asks for
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")


def train(cfg: DictConfig) -> dict[str, float]:
    register_resolvers()
    quiet_known_warnings()
    check_fold(cfg.fold)
    check_ctc_capacity(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    # the whole config is in the run folder (Hydra writes it); the log keeps to what a reader needs first
    log.info("config: %s/.hydra/config.yaml", cfg.paths.output_dir)
    log.debug("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
    datamodule = hydra.utils.instantiate(cfg.data)
    system = hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all")
    loggers = instantiate_group(cfg.get("logger"))
    callbacks = instantiate_group(cfg.get("callbacks"))
    if not loggers:  # a learning-rate monitor has nowhere to write
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("train"):
        ckpt = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
        trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test") and not trainer.fast_dev_run:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        averaged = next((c.path for c in callbacks if getattr(c, "path", None)), None)
        ckpt = averaged or best or None
        log.info("testing %s on the held-out fold", ckpt or "the last weights")
        trainer.test(system, datamodule=datamodule, ckpt_path=ckpt, weights_only=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    log.info("metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return metrics


def evaluate_from_config(cfg: DictConfig) -> dict:
    """What `src/eval.py` does: read a labelled set with a checkpoint or released model; write the reports."""
    register_resolvers()
    if cfg.get("labels_tsv") is None:
        check_fold(cfg.fold)
    predictor = load_predictor(
        cfg.ckpt_path,
        method=cfg.decode,
        domain=cfg.domain,
        beam_size=cfg.beam_size,
        batch_size=cfg.batch_size,
        threads=cfg.get("torch_threads"),
    )
    lines = evaluation_lines(cfg, predictor)
    return evaluate(predictor, lines, out_dir=cfg.paths.output_dir, domain=cfg.domain)
