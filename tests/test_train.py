"""Training runs end to end through `vihtr.training.run.train` (what `src/train.py` calls) on tiny models."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import KALAPA, REPO_ROOT
from training_helpers import TINY, TRAIN_SCRIPT, RecordRun, compose_config, one_torch_thread  # noqa: F401

from vihtr.data.sources.real import read_labels
from vihtr.training.run import train

FIXTURE_LINES = REPO_ROOT / "tests" / "fixtures" / "lines"
# the subprocess's config is what a user types, plus this run's record and a quiet, single-threaded run
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT / "tests")}


def record_callback(dirpath: Path) -> list[str]:
    return [
        f"+callbacks.record._target_={RecordRun.__module__}.RecordRun",
        f"+callbacks.record.dirpath={dirpath}",
    ]


@pytest.mark.parametrize(
    "backbone, decoder",
    [("b1", "transformer"), ("b2", "transformer"), ("b1", "attention"), ("b1", "ctc")],
)
def test_fast_dev_run(backbone, decoder, tmp_path):
    cfg = compose_config(
        "train", [*TINY, "debug=fdr", f"backbone={backbone}", f"decoder={decoder}"], tmp_path
    )
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss"]) and metrics["train/loss"] > 0
    assert ("train/ce" in metrics) == (decoder != "ctc")  # a CTC-only model has no decoder loss
    assert "train/ctc" in metrics
    assert math.isfinite(metrics["val/cer"])
    assert not list(tmp_path.rglob("averaged.ckpt"))  # nothing to average in a fast_dev_run


@pytest.mark.parametrize("decoder", ["transformer", "ctc"])
def test_16_bit_mixed_precision_trains_and_validates_on_cpu(decoder, tmp_path):
    """The design's 16-bit mixed precision (16-mixed on CUDA; bf16-mixed is its CPU form) through a training
    step and a validation, so the path runs in CI, which has no GPU."""
    cfg = compose_config(
        "train", [*TINY, "debug=fdr", f"decoder={decoder}", "trainer.precision=bf16-mixed"], tmp_path
    )
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss"]) and metrics["train/loss"] > 0
    assert math.isfinite(metrics["val/cer"]) and "val/kalapa/cer" in metrics


def test_multirun_runs_every_job(tmp_path):
    cmd = [
        *TRAIN_SCRIPT,
        "-m",
        *TINY,
        "debug=fdr",
        "torch_threads=1",
        "seed=1,2",
        f"hydra.sweep.dir={tmp_path}",
    ]
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for job, seed in [(0, 1), (1, 2)]:
        assert f"seed={seed}" in (tmp_path / str(job) / ".hydra" / "overrides.yaml").read_text()
        assert "metrics: {" in (tmp_path / str(job) / "train.log").read_text()


@pytest.fixture
def handful_of_lines(tmp_path) -> Path:
    """A labelled folder of a few lines: 4 real Kalapa lines when the data is here, else 6 fixture lines."""
    if (KALAPA / "labels.tsv").exists():
        root, rows = KALAPA, read_labels(KALAPA / "labels.tsv")[:4]
    else:
        root, rows = FIXTURE_LINES, read_labels(FIXTURE_LINES / "labels.tsv")[:6]
    folder = tmp_path / "lines"
    folder.mkdir()
    # absolute image paths: the folder holds only the list
    (folder / "labels.tsv").write_text(
        "".join(f"{root / rel}\t{text}\n" for rel, text in rows), encoding="utf-8"
    )
    return folder


def test_overfit_a_handful_of_lines_reaches_cer_0(handful_of_lines, tmp_path):
    n = len(read_labels(handful_of_lines / "labels.tsv"))
    overrides = [
        "debug=overfit",
        "trainer=cpu",
        f"data.sources.kalapa.root={handful_of_lines}",
        f"data.batch_size={n}",
        f"data.samples_per_epoch={4 * n}",
        "image.height=32",
        "image.max_width=512",
        # a small, fast network: what is tested is that the recipe can learn, not how well this one reads
        "model.net.backbone=mobilenetv3_small_050",
        "model.net.d_model=64",
        "model.net.nhead=2",
        "model.net.ffn_dim=128",
        "model.net.decoder_layers=1",
        "model.net.max_len=64",
        "model.optimizer.lr=3e-3",
        "model.scheduler.warmup_steps=0.1",
        "trainer.max_epochs=150",
        "trainer.check_val_every_n_epoch=50",
        "callbacks.model_checkpoint=null",
        "callbacks.checkpoint_averaging=null",
        "callbacks.progress_bar=null",
        "trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
    ]
    metrics = train(compose_config("train", overrides, tmp_path))
    assert metrics["val/cer"] == 0.0, metrics
    assert metrics["val/line_acc"] == 1.0


def test_resume_keeps_the_step_count(tmp_path):
    checkpoint_every_step = [
        *TINY,
        "logger=none",
        "test=false",
        "callbacks.progress_bar=null",
        "+callbacks.model_checkpoint.every_n_train_steps=1",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.filename='step{step}'",
        "callbacks.model_checkpoint.save_top_k=-1",
        *record_callback(tmp_path),
    ]
    train(compose_config("train", [*checkpoint_every_step, "trainer.max_steps=4"], tmp_path))
    [first] = RecordRun.read(tmp_path)
    assert (first["start_step"], first["end_step"]) == (0, 4)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4
    # "killed" after step 4: the same run folder, resumed from its last checkpoint
    train(
        compose_config("train", [*checkpoint_every_step, "trainer.max_steps=6", "ckpt_path=last"], tmp_path)
    )
    [resumed] = RecordRun.read(tmp_path)
    assert (resumed["start_step"], resumed["end_step"]) == (4, 6)
    assert torch.load(last, weights_only=False)["global_step"] == 6
    assert {p.name for p in (tmp_path / "checkpoints").glob("step*.ckpt")} == {
        f"step{i}.ckpt" for i in range(1, 7)
    }


def test_ddp_on_two_cpu_processes(tmp_path):
    """Two CPU processes train 2 steps in step; the datamodule gives each rank its own lines."""
    cmd = [
        *TRAIN_SCRIPT,
        *TINY,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_steps=2",
        "logger=none",
        "test=false",
        "torch_threads=1",
        "callbacks.progress_bar=null",
        f"hydra.run.dir={tmp_path}",
        *record_callback(tmp_path),
    ]
    done = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = RecordRun.read(tmp_path)
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["end_step"] == 2 for r in ranks)
    assert ranks[0]["first_texts"] != ranks[1]["first_texts"]


def test_wandb_offline_run_with_progress_bar(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_config(
        "train",
        [*TINY, "logger=wandb", "trainer.max_steps=2", "trainer.val_check_interval=2"]
        + ["trainer.limit_val_batches=1", "test=false"],
        tmp_path,
    )
    assert "progress_bar" in cfg.callbacks  # RichProgressBar, as in a real run
    metrics = train(cfg)
    import wandb

    wandb.finish()
    assert "train/loss" in metrics
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert any(runs[0].glob("*.wandb"))  # the log `wandb sync` uploads
    # what a reader of the run gets: the validation CER overall and per source in the run's log, and the
    # table of validation images with target and prediction
    keys = [k.encode() for k in ("val/cer", "val/kalapa/cer", "train/loss", "val/examples")]
    for _ in range(60):  # the offline writer may still be flushing the log after finish() returns
        log = next(runs[0].glob("*.wandb")).read_bytes()
        if all(key in log for key in keys):
            break
        time.sleep(0.5)
    assert all(key in log for key in keys), [k for k in keys if k not in log]
    [table] = (runs[0] / "files" / "media" / "table" / "val").glob("examples_*.table.json")
    table = json.loads(table.read_text())
    assert table["columns"] == ["image", "target", "prediction", "source"] and table["data"]
    assert {row[3] for row in table["data"]} <= {"kalapa", "vnondb"} and all(row[1] for row in table["data"])
