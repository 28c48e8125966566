"""Evaluation of a saved model (`src/eval.py`), checkpoint averaging and learning-rate schedules."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import hydra
import pytest
import torch
from conftest import REPO_ROOT
from training_helpers import TINY, compose_config, one_torch_thread  # noqa: F401

from vihtr.models.release import save_release
from vihtr.training.callbacks import average_state_dicts
from vihtr.training.evaluate import load_model
from vihtr.training.run import evaluate_from_config, train
from vihtr.training.schedules import build_scheduler

FIXTURE_LABELS = REPO_ROOT / "tests" / "fixtures" / "lines" / "labels.tsv"
EVAL_SCRIPT = REPO_ROOT / "src" / "eval.py"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny model trained one epoch of 120 steps on data=tiny, validated once and checkpointed: (run folder,
    the trainer's metrics). Long enough for its readings to depend on the image, so that a CER reproduced
    by eval means the same lines, prepared the same way."""
    run = tmp_path_factory.mktemp("run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    overrides = [
        *TINY,
        "model.net.backbone=mobilenetv3_small_050",
        "model.optimizer.lr=3e-3",
        "data.samples_per_epoch=480",
        "trainer.max_epochs=1",
        "trainer.num_sanity_val_steps=0",
        "logger=none",
        "test=false",
        "callbacks.progress_bar=null",
    ]
    metrics = train(compose_config("train", overrides, run))
    torch.set_num_threads(threads)
    return run, metrics


def test_eval_reproduces_the_validation_cer(trained_run, tmp_path):
    run, trained = trained_run
    cfg = compose_config("eval", ["data=tiny", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"], tmp_path)
    metrics = evaluate_from_config(cfg)
    assert cfg.image.height == 32  # the checkpoint's input size, not eval.yaml's
    assert metrics["all"]["cer"] == pytest.approx(trained["val/cer"], abs=1e-6)
    for source in ("kalapa", "vnondb"):
        assert metrics[source]["cer"] == pytest.approx(trained[f"val/{source}/cer"], abs=1e-6)
    # the reports
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    lines = [row.split("\t") for row in (tmp_path / "lines.tsv").read_text(encoding="utf-8").splitlines()]
    assert lines[0] == ["source", "writer", "edits", "target", "prediction"]
    assert len(lines) - 1 == metrics["all"]["lines"]
    assert len({row[4] for row in lines[1:]}) > 1  # the model reads its input, it does not emit one string
    kinds = json.loads((tmp_path / "errors_by_kind.json").read_text())
    assert sum(kinds.values()) == metrics["all"]["lines"]
    assert (tmp_path / "cer_by_writer_and_length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_averaged_checkpoint_of_one_snapshot_is_the_last_weights(trained_run):
    run, _ = trained_run
    averaged, _ = load_model(str(run / "checkpoints" / "averaged.ckpt"))
    last, _ = load_model(str(run / "checkpoints" / "last.ckpt"))
    for key, value in last.state_dict().items():
        assert torch.equal(averaged.state_dict()[key], value), key


def test_eval_on_a_labels_tsv_reads_every_line(trained_run, tmp_path):
    run, _ = trained_run
    cfg = compose_config(
        "eval", [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"labels_tsv={FIXTURE_LABELS}"], tmp_path
    )
    metrics = evaluate_from_config(cfg)
    assert set(metrics) == {"all", "lines"}  # one source, named after the folder
    assert metrics["all"]["lines"] == 10
    targets = {
        row.split("\t")[3] for row in (tmp_path / "lines.tsv").read_text(encoding="utf-8").splitlines()[1:]
    }
    assert "Thuỷ Nguyên" in targets  # labels keep the old tone style, as the data configs normalise them


def test_eval_script_on_a_released_model(trained_run, tmp_path):
    run, _ = trained_run
    model, preprocess = load_model(str(run / "checkpoints" / "last.ckpt"))
    release = save_release(model, tmp_path / "release", preprocess)
    out = tmp_path / "eval"
    cmd = [
        sys.executable,
        str(EVAL_SCRIPT),
        f"ckpt_path={release}",
        f"labels_tsv={FIXTURE_LABELS}",
        "torch_threads=1",
        f"hydra.run.dir={out}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["all"]["lines"] == 10
    assert (out / "eval.log").exists()


def test_eval_of_a_ctc_only_model_decodes_with_ctc(tmp_path):
    """eval.yaml's decode: null lets each model read its own way (greedy would fail without a decoder)."""
    cfg = compose_config("train", [*TINY, "decoder=ctc"], tmp_path)
    system = hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all")
    release = save_release(system.model, tmp_path / "ctc", system.preprocess)
    cfg = compose_config("eval", [f"ckpt_path={release}", f"labels_tsv={FIXTURE_LABELS}"], tmp_path / "eval")
    assert evaluate_from_config(cfg)["all"]["lines"] == 10


def test_average_state_dicts():
    states = [
        {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([1.0], dtype=torch.float16), "n": torch.tensor(3)},
        {"w": torch.tensor([3.0, 6.0]), "h": torch.tensor([2.0], dtype=torch.float16), "n": torch.tensor(7)},
    ]
    averaged = average_state_dicts(states)
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0]))
    assert averaged["h"].dtype == torch.float16 and averaged["h"].item() == 1.5
    assert averaged["n"].item() == 7  # integer buffers (BatchNorm's counters) come from the last state
    assert averaged["n"] is not states[-1]["n"]  # a copy: later training does not change the average
    assert average_state_dicts(states[:1])["w"].tolist() == [1.0, 2.0]


def learning_rates(name: str, total: int, lr: float = 1.0, **kwargs) -> list[float]:
    """The learning rate of each of `total` optimizer steps, stepped as Lightning steps it."""
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(optimizer, name, total_steps=total, **kwargs)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_onecycle_rises_then_anneals():
    rates = learning_rates("onecycle", 100, lr=2e-3, warmup_steps=0.1)
    peak = max(range(100), key=rates.__getitem__)
    assert 8 <= peak <= 12 and rates[peak] == pytest.approx(2e-3)
    assert rates[0] < 2e-3 / 10 and rates[-1] < 2e-3 / 100
    assert all(a <= b for a, b in zip(rates[:peak], rates[1 : peak + 1]))
    assert all(a >= b for a, b in zip(rates[peak:], rates[peak + 1 :]))


@pytest.mark.parametrize("name", ["cosine", "linear"])
def test_warmup_then_decay(name):
    rates = learning_rates(name, 100, warmup_steps=10, final_lr_ratio=0.01)
    assert rates[:10] == sorted(rates[:10]) and rates[0] < 0.2 and rates[10] == pytest.approx(1.0)
    decay = rates[10:]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert 0.01 <= decay[-1] < 0.05
    halfway = decay[45]
    if name == "linear":
        assert decay[1] - decay[2] == pytest.approx(decay[50] - decay[51])
    assert halfway == pytest.approx(0.505, abs=0.02)  # both pass the midpoint of 1 and 0.01 halfway


@pytest.mark.parametrize("name", ["onecycle", "cosine", "linear", "constant"])
@pytest.mark.parametrize("total", [1, 2, 3])
def test_tiny_runs_do_not_crash(name, total):
    rates = learning_rates(name, total, lr=1e-3)
    assert len(rates) == total and all(math.isfinite(r) and r > 0 for r in rates)


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rates("step", 10)


def test_onecycle_resumed_with_more_steps_takes_the_new_length():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    short = build_scheduler(optimizer, "onecycle", total_steps=4)
    for _ in range(4):
        optimizer.step()
        short.step()
    longer = build_scheduler(optimizer, "onecycle", total_steps=10)
    longer.load_state_dict(short.state_dict())
    assert longer.last_epoch == 4  # the position comes from the checkpoint
    for _ in range(6):  # past the old cycle's end
        optimizer.step()
        longer.step()
    assert optimizer.param_groups[0]["lr"] < 0.01


def test_eval_of_a_release_decodes_as_the_release_was_scored(tmp_path, monkeypatch):
    """decode: null on a release folder takes its metadata.decode_method (what its scores were measured with)."""
    import vihtr.training.run as run_module

    cfg = compose_config("train", TINY, tmp_path)
    system = hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all")
    used = []
    monkeypatch.setattr(
        run_module, "evaluate", lambda predictor, lines, out_dir, domain: used.append(predictor.method)
    )
    for recommended in ("beam", "greedy"):
        release = save_release(
            system.model, tmp_path / recommended, system.preprocess, {"decode_method": recommended}
        )
        cfg = compose_config(
            "eval", [f"ckpt_path={release}", f"labels_tsv={FIXTURE_LABELS}"], tmp_path / "eval"
        )
        evaluate_from_config(cfg)
    cfg = compose_config(
        "eval", [f"ckpt_path={release}", f"labels_tsv={FIXTURE_LABELS}", "decode=beam"], tmp_path / "e"
    )
    evaluate_from_config(cfg)
    assert used == ["beam", "greedy", "beam"]


def test_every_evaluation_path_gives_the_release_one_number(data_root, tmp_path):
    """`src/eval.py`, `release.py score` and the `Predictor` read the same held-out lines of the shipped
    model the same way (its own decoding and domain), so they report the same CER."""
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    import release as release_script

    from vihtr.inference.predictor import Predictor
    from vihtr.training.evaluate import compose_eval_config, evaluation_lines, read_lines, summarise

    model = REPO_ROOT / "models" / "vihtr-lite1"
    limit = ["data.val_size_per_source=12", "data.val_sources.vnondb=null", f"paths.data_root={data_root}"]
    by_eval = evaluate_from_config(compose_config("eval", [f"ckpt_path={model}", *limit], tmp_path / "eval"))
    scores = tmp_path / "scores.json"
    release_script.main(
        ["score", str(model), "--data-root", str(data_root), "--limit", "12", "--sources", "kalapa",
         "--threads", "1", "--out", str(scores)]
    )  # fmt: skip
    by_score = json.loads(scores.read_text())["results"]["vihtr-lite1 (auto)"]["kalapa"]
    predictor = Predictor.from_release(model)
    lines = evaluation_lines(compose_eval_config(limit), predictor)
    by_predictor = summarise(read_lines(predictor, lines))["kalapa"]
    assert by_eval["kalapa"]["lines"] == by_score["lines"] == by_predictor["lines"] == 12
    assert by_eval["kalapa"]["cer"] == by_score["cer"] == by_predictor["cer"]
    assert (predictor.method, predictor.domain) == ("ctc", "auto")  # the release's own, used by all three
