"""Callbacks: the seed's checkpoint averaging."""

from __future__ import annotations

import logging
import os

import pytorch_lightning as pl
import torch

from vihtr.models.release import average_state_dicts

log = logging.getLogger(__name__)


class CheckpointAveraging(pl.Callback):
    """Average the weights of the last `last_k` validation points and save them as `averaged.ckpt`.

    The seed averaged its last checkpoints; snapshots are taken at every validation end (after the
    weights have moved), kept on the CPU, and written at the end of fit as a normal Lightning checkpoint
    so `eval.py`, `release.py` and `init_from` read it like any other.
    """

    def __init__(self, last_k: int = 5, dirpath: str | None = None, filename: str = "averaged.ckpt") -> None:
        self.last_k = last_k
        self.dirpath = dirpath
        self.filename = filename
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.path: str | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        snapshot = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        self.snapshots = (self.snapshots + [snapshot])[-self.last_k :]

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.snapshots or not trainer.is_global_zero:
            return
        averaged = average_state_dicts(self.snapshots)
        dirpath = self.dirpath or (
            trainer.checkpoint_callback.dirpath if trainer.checkpoint_callback else None
        )
        dirpath = dirpath or trainer.default_root_dir
        os.makedirs(dirpath, exist_ok=True)
        self.path = os.path.join(dirpath, self.filename)
        torch.save(
            {
                "state_dict": averaged,
                "hyper_parameters": dict(pl_module.hparams),
                "global_step": trainer.global_step,
                "epoch": trainer.current_epoch,
                "pytorch-lightning_version": pl.__version__,
                "averaged_snapshots": len(self.snapshots),
            },
            self.path,
        )
        log.info("averaged the last %d snapshots into %s", len(self.snapshots), self.path)
