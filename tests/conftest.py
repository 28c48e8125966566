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
