"""The training engine's levers and the long schedule that survives stops (scripts/train_continue.sh)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch
from conftest import REPO_ROOT
from training_helpers import TINY, RecordRun, compose_config, one_torch_thread  # noqa: F401

from vihtr.training.schedules import build_scheduler


def _one_step(cfg):
    datamodule = hydra.utils.instantiate(cfg.data)
    system = hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all")
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_set))
    system.train()
    before = {k: v.clone() for k, v in system.model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in system.parameters() if p.requires_grad], lr=0.1)
    system._losses(batch)["loss"].backward()
    optimizer.step()
    after = system.model.state_dict()
    changed = {k for k, v in after.items() if v.is_floating_point() and not torch.equal(v, before[k])}
    return system, changed


def test_frozen_stages_keep_their_weights_and_statistics_and_the_rest_learns(tmp_path):
    cfg = compose_config("train", [*TINY, "model.freeze_stages=2", "model.channels_last=true"], tmp_path)
    system, changed = _one_step(cfg)
    frozen = ("encoder.backbone.conv_stem.", "encoder.backbone.bn1.", "encoder.backbone.blocks.0.")
    frozen += ("encoder.backbone.blocks.1.",)
    assert not {k for k in changed if k.startswith(frozen)}  # weights and running statistics alike
    assert any(k.startswith("encoder.backbone.blocks.2.") and k.endswith("running_mean") for k in changed)
    assert any(k.startswith("encoder.backbone.blocks.2.") and k.endswith("weight") for k in changed)
    assert any(k.startswith("ctc_head.") for k in changed)
    assert not system.model.encoder.backbone.blocks[1].training  # kept in eval mode through .train()
    assert system.model.encoder.backbone.blocks[2].training


def test_frozen_stages_keep_their_statistics_through_the_trainer(tmp_path):
    """What Lightning does, not only what `.train()` does: it never calls `train()` when fitting starts and
    restores every module's mode after validating, so the frozen stages are put in eval mode before each step."""
    from training_helpers import RecordRun

    from vihtr.training.run import train

    overrides = [*TINY, "model.freeze_stages=2", "debug=fdr", "callbacks.model_checkpoint=null"]
    overrides += [f"+callbacks.record._target_={RecordRun.__module__}.RecordRun"]
    overrides += [f"+callbacks.record.dirpath={tmp_path / 'record'}", "seed=1"]
    train(compose_config("train", overrides, tmp_path / "run"))
    initial = torch.load(tmp_path / "record" / "initial_weights-rank0.pt", weights_only=True)
    final = torch.load(tmp_path / "record" / "final_weights-rank0.pt", weights_only=True)
    frozen = ("encoder.backbone.conv_stem.", "encoder.backbone.bn1.", "encoder.backbone.blocks.0.")
    frozen += ("encoder.backbone.blocks.1.",)
    stats = [k for k in final if k.startswith(frozen) and k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(final[k], initial[k]) for k in stats)
    later = [k for k in final if k.startswith("encoder.backbone.blocks.2.") and k.endswith("running_mean")]
    assert any(not torch.equal(final[k], initial[k]) for k in later)


def test_freezing_more_stages_than_the_backbone_has_is_refused(tmp_path):
    cfg = compose_config("train", [*TINY, "model.freeze_stages=99"], tmp_path)
    with pytest.raises(Exception, match="freeze_stages=99"):  # Hydra wraps the ValueError
        hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all")


def test_channels_last_reads_as_the_default_layout(tmp_path):
    cfg = compose_config("train", [*TINY], tmp_path)
    plain = hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all").eval()
    cfg_cl = compose_config("train", [*TINY, "model.channels_last=true"], tmp_path)
    fast = hydra.utils.instantiate(cfg_cl.model, _recursive_=False, _convert_="all").eval()
    fast.model.load_state_dict(plain.model.state_dict())
    images, widths = torch.rand(2, 1, 32, 160) * 2 - 1, torch.tensor([160, 120])
    batch = {"images": images, "widths": widths, "targets": torch.tensor([[1, 5, 2], [1, 6, 2]])}
    batch["target_lengths"] = torch.tensor([3, 3])
    with torch.no_grad():
        a, b = plain._losses(batch)["loss"], fast._losses(batch)["loss"]
    assert torch.allclose(a, b, rtol=1e-4), (a, b)


def test_the_ctc_shortcut_trains_the_cnn_alone_and_is_not_part_of_the_released_network(tmp_path):
    """The shortcut reads the CNN's columns directly: on its own (main CTC weight 0) its gradient reaches the
    CNN and nothing after it. Its columns line up with the main head's. A checkpoint's network, as a release
    exports it, loads into a plain `OCRModel` with nothing missing or left over."""
    from vihtr.models.release import average_checkpoints

    overrides = [*TINY, "decoder=ctc", "model.shortcut_weight=0.5", "model.ctc_weight=0", "seed=2"]
    cfg = compose_config("train", overrides, tmp_path)
    system = hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all").train()
    images, widths = torch.rand(2, 1, 32, 160) * 2 - 1, torch.tensor([160, 120])
    batch = {"images": images, "widths": widths, "targets": torch.tensor([[1, 5, 6, 2], [1, 6, 2, 0]])}
    batch["target_lengths"] = torch.tensor([4, 3])
    parts = system._losses(batch)
    assert torch.isfinite(parts["ctc_shortcut"]) and parts["ctc_shortcut"] > 0
    assert torch.allclose(parts["loss"], 0.5 * parts["ctc_shortcut"])
    parts["loss"].backward()
    grads = {n: p.grad for n, p in system.named_parameters()}
    assert grads["shortcut.conv.weight"].abs().sum() > 0
    assert any(
        g is not None and g.abs().sum() > 0
        for n, g in grads.items()
        if n.startswith("model.encoder.backbone.")
    )
    after_cnn = [
        n for n in grads if n.startswith(("model.encoder.proj", "model.encoder.layers", "model.ctc_head"))
    ]
    assert after_cnn and all(grads[n] is None or grads[n].abs().sum() == 0 for n in after_cnn)
    with torch.no_grad():
        out = system.model(images, widths)
        assert system.shortcut(out["columns"]).shape == out["ctc_logits"].shape
    system.eval()
    assert "ctc_shortcut" not in system._losses(batch)  # validation losses are the network's own
    checkpoint = tmp_path / "run.ckpt"
    torch.save({"state_dict": system.state_dict()}, checkpoint)
    from vihtr.models.ocr import OCRModel

    network = OCRModel(**system.model.config)
    network.load_state_dict(average_checkpoints([checkpoint]))  # strict: no shortcut weights in it
    system.load_weights(str(checkpoint))  # init_from a run that had one takes the network's part


@pytest.mark.parametrize("name", ["cosine", "linear", "constant"])
def test_a_schedule_started_midway_continues_the_same_learning_rates(name):
    def rates(start_step, steps):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = build_scheduler(optimizer, name, total_steps=100, warmup_steps=10, start_step=start_step)
        out = []
        for _ in range(steps):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    assert rates(60, 40) == pytest.approx(rates(0, 100)[60:])


def test_onecycle_cannot_start_midway():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="start_step"):
        build_scheduler(optimizer, "onecycle", total_steps=100, start_step=5)


# the long run's own experiment, made small: a tiny CNN with stages to freeze, real lines only, no workers
LIGHT = [
    "model.net.backbone=test_efficientnet", "model.backbone_weights=null", "model.freeze_stages=1",
    "model.net.d_model=32", "model.net.max_len=40", "image.height=32", "image.max_width=256",
    "data.train_weights.synth_address=0",
    "data.train_weights.synth_words=0", "data.batch_size=2", "data.val_batch_size=2", "data.num_workers=0",
    "data.val_size_per_source=2", "logger=[csv]", "trainer.log_every_n_steps=1", "seed=3",
]  # fmt: skip


def _run_long(env, total, *extra):
    """scripts/train_continue.sh (its default experiment) made small, `total` steps in the whole schedule."""
    cmd = ["bash", str(REPO_ROOT / "scripts" / "train_continue.sh"), *LIGHT]
    cmd += [
        f"model.scheduler.total_steps={total}",
        "model.scheduler.warmup_steps=2",
        "model.optimizer.lr=3e-4",
    ]
    cmd += ["trainer.val_check_interval=2", *extra]
    subprocess.run(cmd, env=env, check=True, cwd=REPO_ROOT, timeout=600)


def _log(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted((tmp_path / "logs").glob("tiny-*.log")))


def _first_lr(state: Path) -> float:
    """The learning rate at the first step of the newest csv log (LearningRateMonitor, first group)."""
    newest = sorted(state.glob("csv/version_*/metrics.csv"))[-1]
    rows = list(csv.DictReader(newest.open()))
    column = next(c for c in rows[0] if c.startswith("lr-AdamW"))
    first = min((r for r in rows if r[column]), key=lambda r: int(r["step"]))
    return float(first[column])


def test_the_long_run_resumes_its_state_and_else_continues_the_release_at_its_step(tmp_path, data_root):
    state, release = tmp_path / "state", tmp_path / "release"
    env = {
        **os.environ,
        "STATE": str(state),
        "RELEASE": str(release),  # none yet: the first segment starts from the initial weights
        "NAME": "tiny",
        "LOGS": str(tmp_path / "logs"),
        "PY": sys.executable,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT / "tests"),
        "VIHTR_DATA_ROOT": str(data_root),
    }
    record = [
        f"+callbacks.record._target_={RecordRun.__module__}.RecordRun",
        f"+callbacks.record.dirpath={tmp_path}",
    ]
    # segment 1 stops at step 4; segment 2 resumes the same schedule (now 8 steps long) from its state
    _run_long(env, 4, *record)
    assert (RecordRun.read(tmp_path)[0]["start_step"], RecordRun.read(tmp_path)[0]["end_step"]) == (0, 4)
    _run_long(env, 8, *record)
    assert (RecordRun.read(tmp_path)[0]["start_step"], RecordRun.read(tmp_path)[0]["end_step"]) == (4, 8)
    assert "resuming" in _log(tmp_path)
    # the release averages the kept checkpoints and records where the schedule stands
    kept = sorted((state / "checkpoints").glob("step*.ckpt"))
    assert len(kept) == 3
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "release.py"), "export", *map(str, kept), str(release)],
        check=True,
        cwd=REPO_ROOT,
    )
    metadata = json.loads((release / "config.json").read_text())["metadata"]
    assert metadata["schedule"] == {"run": "lite1_long4", "name": "cosine", "total_steps": 8, "step": 8}
    # a machine without the state: the release's weights, at step 8 of a schedule now 12 steps long
    metadata["schedule"]["step"] = 6  # as if the release came from step 6
    config = json.loads((release / "config.json").read_text())
    config["metadata"] = metadata
    (release / "config.json").write_text(json.dumps(config))
    lost = tmp_path / "lost"
    state.rename(lost)
    _run_long(env, 12, *record)
    assert (RecordRun.read(tmp_path)[0]["start_step"], RecordRun.read(tmp_path)[0]["end_step"]) == (0, 6)
    assert "continuing from the release" in _log(tmp_path)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    expected = build_scheduler(
        optimizer, "cosine", total_steps=12, warmup_steps=2, start_step=6
    ).get_last_lr()[0]
    assert _first_lr(state) == pytest.approx(expected)
    # a release from another run (an earlier long schedule): its weights, at step 0 of this run's schedule
    metadata["schedule"]["run"] = "lite1_long"
    config["metadata"] = metadata
    (release / "config.json").write_text(json.dumps(config))
    state.rename(tmp_path / "lost again")
    _run_long(env, 4, *record)
    assert (RecordRun.read(tmp_path)[0]["start_step"], RecordRun.read(tmp_path)[0]["end_step"]) == (0, 4)
    assert "at step 0 of lite1_long4's schedule" in _log(tmp_path)
    initial = torch.load(tmp_path / "initial_weights-rank0.pt", weights_only=True)
    released = torch.load(release / "weights.pt", weights_only=True)
    assert released.keys() <= initial.keys()
    assert all(torch.equal(initial[k].float(), v.float()) for k, v in released.items())
