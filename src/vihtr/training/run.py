"""What `src/train.py` does: build datamodule, system, callbacks, loggers and trainer from config; fit; test."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from vihtr.data.datamodule import LineDataModule
from vihtr.data.sources.real import LineFolderSource
from vihtr.training.config import register_resolvers
from vihtr.training.evaluate import evaluate, load_model

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


def train(cfg: DictConfig) -> dict[str, float]:
    register_resolvers()
    check_fold(cfg.fold)
    check_ctc_capacity(cfg)
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
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


def evaluation_batches(cfg: DictConfig, charset: str):
    """The labelled lines to evaluate, batched exactly as validation batches them.

    A `labels_tsv` is read in full (no folds); otherwise the data config's validation subset, with its own
    batch size, so padding, and thus the CER, matches the `val/cer` the trainer logged."""
    if cfg.get("labels_tsv"):
        labels = Path(cfg.labels_tsv)
        source = LineFolderSource(
            labels.parent,
            name=labels.parent.name,
            labels=labels.name,
            tone_style=cfg.tone_style,
            charset=charset,
            fold=None,
            load_height=cfg.image.height,
        )
        datamodule = LineDataModule(
            train_sources={},
            val_sources={source.name: source},
            charset=charset,
            preprocess=cfg.image,
            val_batch_size=cfg.batch_size,
            val_size_per_source=None,
            seed=cfg.seed,
        )
    else:
        with open_dict(cfg):
            cfg.data.train_sources = {}  # only the validation lines are read
        datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("validate")
    return datamodule.val_dataloader()


def evaluate_from_config(cfg: DictConfig) -> dict:
    """What `src/eval.py` does: decode a labelled set with a checkpoint or released model; write the reports."""
    register_resolvers()
    if cfg.get("labels_tsv") is None:
        check_fold(cfg.fold)
    if cfg.get("torch_threads"):
        torch.set_num_threads(cfg.torch_threads)
    model, preprocess = load_model(cfg.ckpt_path)
    with open_dict(cfg):
        cfg.image = preprocess.to_dict()  # the model's own input size, whatever the config says
    batches = evaluation_batches(cfg, model.charset.chars)
    method = cfg.decode
    if method is None and os.path.isdir(cfg.ckpt_path):  # a release: the decoding it was scored with
        from vihtr.inference.predictor import release_metadata

        method = release_metadata(cfg.ckpt_path).get("decode_method")
    return evaluate(model, batches, out_dir=cfg.paths.output_dir, method=method, beam_size=cfg.beam_size)
