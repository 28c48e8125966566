"""Shared test setup: offline, quiet, few threads, and the real data root when present."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

import torch  # noqa: E402

import vihtr  # noqa: E402, F401  (torchvision fix before anything imports timm)

torch.set_num_threads(1)  # CI has 2 cores and pytest runs one test at a time beside data workers

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("VIHTR_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))
KALAPA = DATA_ROOT / "kalapa2023"


def ctc_log_probs(charset, readings: list[tuple[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A model's CTC output (1 x T x V log-probs, padding mask) torn between readings of the same length:
    each character frame is split between the readings' characters by the given weights, a sure blank
    between characters, the special tokens (SOS, EOS, MASK) never."""
    import math

    import numpy as np

    n = len(readings[0][0])
    logp = np.full((2 * n + 1, 1 + len(charset.chars)), -20.0, dtype=np.float32)
    for t in range(2 * n + 1):
        if t % 2 == 0:
            logp[t, 0] = 0.0
            continue
        for text, weight in readings:
            col = 1 + charset.chars.index(text[t // 2])
            logp[t, col] = np.logaddexp(logp[t, col], math.log(weight))
    specials = np.full((logp.shape[0], 3), -30.0, dtype=np.float32)
    full = torch.from_numpy(np.concatenate([logp[:, :1], specials, logp[:, 1:]], axis=1))[None]
    return full, torch.zeros(1, full.shape[1], dtype=torch.bool)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (KALAPA / "labels.tsv").exists():
        pytest.skip(f"real data not found under {DATA_ROOT} (set VIHTR_DATA_ROOT)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def real_images(data_root) -> list[tuple[Path, str]]:
    """A few real Kalapa lines (path, label)."""
    rows = []
    for line in (KALAPA / "labels.tsv").read_text(encoding="utf-8").splitlines()[:8]:
        path, text = line.split("\t")
        rows.append((KALAPA / path, text))
    return rows


@pytest.fixture(scope="session")
def many_real_lines(data_root) -> list[Path]:
    """60 real Kalapa lines of mixed widths: enough to see a batch-composition effect."""
    lines = (KALAPA / "labels.tsv").read_text(encoding="utf-8").splitlines()[:60]
    return [KALAPA / line.split("\t")[0] for line in lines]


# CI sets VIHTR_NO_SKIPS=1 (.ci/run): there every test must run, so a skip (no data, no browser, a missing
# package) fails with its reason instead of passing quietly. A user's `make test` still skips, and says why.
NO_SKIPS = os.environ.get("VIHTR_NO_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if NO_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where VIHTR_NO_SKIPS=1 (CI runs every test): {reason}"
