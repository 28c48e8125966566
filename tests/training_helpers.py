"""Shared by the training tests: compose the real configs small, and a callback that records what a run did."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from vihtr.training.config import REPO_ROOT, compose_config  # noqa: F401  (compose_config: the tests import it from here)

# a model that trains in milliseconds per step: tiny dims, 32 px lines
TINY = [
    "data=tiny",
    "trainer=cpu",
    "model.net.d_model=32",
    "model.net.nhead=2",
    "model.net.ffn_dim=64",
    "model.net.decoder_layers=1",
    "model.net.max_len=40",
    "image.height=32",
    "image.max_width=256",
]
TRAIN_SCRIPT = [sys.executable, str(REPO_ROOT / "src" / "train.py")]


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Training tests run on one thread: on a shared 2-core machine two threads make convolutions ~20x
    slower as soon as anything else runs. Import this fixture into a test module to apply it there."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class RecordRun(pl.Callback):
    """Writes `record-rank<r>.json` in `dirpath`: the step training started and ended at, and the texts of
    the first training batch (so tests can tell what resumed and what each DDP rank saw); and the model's
    weights when fitting starts and ends (`initial_weights-rank<r>.pt`, `final_weights-rank<r>.pt`)."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.record: dict = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record = {"rank": trainer.global_rank, "start_step": trainer.global_step}
        self.initial = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self.record.setdefault("first_texts", list(batch["texts"]))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record["end_step"] = trainer.global_step
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"record-rank{trainer.global_rank}.json"
        path.write_text(json.dumps(self.record, ensure_ascii=False))
        torch.save(self.initial, self.dirpath / f"initial_weights-rank{trainer.global_rank}.pt")
        torch.save(pl_module.model.state_dict(), self.dirpath / f"final_weights-rank{trainer.global_rank}.pt")

    @staticmethod
    def read(dirpath: Path) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(Path(dirpath).glob("record-rank*.json"))]
