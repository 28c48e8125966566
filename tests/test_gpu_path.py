"""The lent-GPU path: real data packed small (scripts/pack_data.py), then scripts/train_gpu.sh, run here on the
CPU (TRAINER=cpu) on the packed fixtures: two runs side by side, each exported as an fp16 release."""

import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vihtr.data.sources.inkml import InkMLSource
from vihtr.data.sources.real import LineFolderSource
from vihtr.paths import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    """The fixtures laid out as the real data root, packed at 32 px."""
    tmp = tmp_path_factory.mktemp("gpu")
    root = tmp / "data"
    shutil.copytree(FIXTURES / "lines", root / "kalapa2023")
    (root / "vnondb").mkdir()
    with tarfile.open(root / "vnondb" / "InkData_line.tar.xz", "w:xz") as tar:
        tar.add(FIXTURES / "inkml", arcname="InkData_line")
    env = {**os.environ, "VIHTR_CACHE_DIR": str(tmp / "cache")}
    out = tmp / "packed"
    args = ["--data-root", str(root), "--out", str(out), "--height", "32"]
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "pack_data.py"), *args], check=True, env=env)
    return out


def test_packed_data_reads_like_the_original(packed):
    original = LineFolderSource(FIXTURES / "lines")
    scans = LineFolderSource(packed / "kalapa2023")
    assert scans.keys == original.keys and scans.texts == original.texts
    with Image.open(packed / "kalapa2023" / scans.keys[0]) as img:
        assert img.mode == "L" and img.height == 32
    strokes = InkMLSource(packed / "vnondb" / "lines.npz.xz", height=32)
    assert strokes.keys == InkMLSource(FIXTURES / "inkml").keys
    assert np.asarray(strokes.get(0, random.Random(0)).image).shape[0] == 32


def test_train_gpu_script_trains_two_runs_and_exports_them(packed, tmp_path):
    out = tmp_path / "returned"
    env = {
        **os.environ,
        "TRAINER": "cpu",
        "PY": sys.executable,
        "OUT": str(out),
        "VIHTR_DATA_ROOT": str(packed),
        "VIHTR_CACHE_DIR": str(tmp_path / "cache"),
        "LOGS": str(tmp_path / "logs"),
        "EXPORT": str(tmp_path / "releases"),
    }
    weights = REPO_ROOT / "models" / "vihtr-lite1" / "weights.pt"
    overrides = [
        "data.sources.kalapa.folds_csv=null",  # the fixtures' folds are assigned in memory
        "data.sources.vnondb.folds_csv=null",
        "data.batch_size=2",
        "data.val_size_per_source=2",
        "trainer.val_check_interval=2",
        "callbacks.checkpoint_averaging.last_k=1",
    ]
    runs = [f"a:lite1_ctc:{weights}", f"b:lite1_fast:{weights}"]
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "train_gpu.sh"), "2", "5", *runs, "--", *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("a", "b"):
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == ["config.json", "metrics.csv", "train.log", "weights.pt"]
        config = json.loads((out / name / "config.json").read_text())
        assert config["metadata"]["trained_steps"] == 2
    assert json.loads((out / "b" / "config.json").read_text())["preprocess"]["width_scale"] == 0.6


def test_probe_measures_cores_steps_and_the_stream(packed, tmp_path):
    env = {**os.environ, "VIHTR_DATA_ROOT": str(packed), "VIHTR_CACHE_DIR": str(tmp_path / "cache")}
    args = ["--workers", "0", "1", "--seconds", "1", "--steps", "1", "--batch", "1", "--width", "256"]
    overrides = [
        "data.sources.kalapa.folds_csv=null",
        "data.sources.vnondb.folds_csv=null",
        "image.height=32",
    ]
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gpu_probe.py"), *args, *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[1:]]
    assert names[0] == "cores (os.cpu_count)" and "busy-loop speed-up, 1 processes" in names
    assert sum(n.startswith("model steps/s") for n in names) == 3
    assert names[-2:] == ["training stream, 0 workers", "training stream, 1 workers"]
    assert all(float(row.split("|")[2].split()[0].rstrip("x")) > 0 for row in rows[1:])
