"""Line confidence a user can act on: isotonic calibration, its error measure, and the release that carries it."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT
from inference_helpers import train_tiny_release

from vihtr.inference.calibration import (
    Calibration,
    cross_fitted_calibration,
    expected_calibration_error,
    fit_calibration,
    isotonic_fit,
    review_table,
    with_review_threshold,
)
from vihtr.inference.predictor import Predictor


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, real_images):
    return train_tiny_release(tmp_path_factory.getbasetemp() / "tiny-release", real_images)


def test_isotonic_fit_pools_violators_into_their_mean():
    x, y = isotonic_fit([0.1, 0.2, 0.3, 0.4], [1.0, 3.0, 2.0, 4.0])
    assert list(y) == [1.0, 2.5, 4.0] and list(x) == pytest.approx([0.1, 0.25, 0.4])


def test_calibration_fixes_an_overconfident_score():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 4000)
    truth = raw**2  # the model says 0.8 where 64 % of characters are right
    accuracy = np.clip(truth + rng.normal(0, 0.05, raw.size), 0, 1)
    calibration = fit_calibration(raw[:2000], accuracy[:2000])
    held = np.array([calibration(r) for r in raw[2000:]])
    ece_raw, _ = expected_calibration_error(raw[2000:], accuracy[2000:])
    ece, _ = expected_calibration_error(held, accuracy[2000:])
    assert ece_raw > 0.1 and ece < 0.02
    assert calibration(0.8) == pytest.approx(0.64, abs=0.03)
    assert all(b >= a for a, b in zip(calibration.y, calibration.y[1:]))


def overconfident_lines(n: int = 3000, writers: int = 20, seed: int = 0):
    """Lines whose raw confidence overstates their character accuracy in a known way: accuracy = raw ** 3."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.3, 1.0, n)
    accuracy = np.clip(raw**3 + rng.normal(0, 0.03, n), 0, 1)
    groups = [f"w{i % writers}" for i in range(n)]
    return raw, accuracy, groups


def test_the_release_calibration_corrects_a_known_overconfidence_on_lines_it_never_saw():
    raw, accuracy, groups = overconfident_lines()
    calibration, crossed, ece_raw, ece = cross_fitted_calibration(raw, accuracy, groups)
    assert ece_raw > 0.15  # raw 0.8 for 51 % of characters right
    assert ece < 0.02  # cross-fitted: each half scored by the map of the other half
    assert calibration.x != (0.0, 1.0)  # a real map, not the identity fallback
    assert calibration(0.8) == pytest.approx(0.8**3, abs=0.03)
    assert calibration(0.95) == pytest.approx(0.95**3, abs=0.03)
    # the review threshold: the lowest whose accepted lines reach 90 % on average
    exact = accuracy > 0.99
    thresholds = [round(t, 2) for t in np.arange(0.1, 1.0, 0.05)]
    table = review_table(crossed, accuracy, exact, thresholds)
    review = with_review_threshold(calibration, table, 0.9).review_below
    assert review is not None
    accepted = accuracy[crossed >= review]
    assert accepted.mean() >= 0.9 and accuracy[crossed >= review - 0.05].mean() < 0.9


def test_a_well_calibrated_score_keeps_the_identity_and_one_writer_is_refused():
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 1, 2000)
    accuracy = np.clip(raw + rng.normal(0, 0.02, raw.size), 0, 1)
    groups = [f"w{i % 10}" for i in range(raw.size)]
    calibration, crossed, ece_raw, ece = cross_fitted_calibration(raw, accuracy, groups)
    assert ece_raw < 0.03
    if calibration.x == (0.0, 1.0):  # kept the identity: it says so by its scores
        assert ece == ece_raw and list(crossed) == list(raw)
    else:
        assert ece < ece_raw
    with pytest.raises(ValueError, match="one writer"):
        cross_fitted_calibration(raw, accuracy, ["w"] * raw.size)


def test_expected_calibration_error_weights_bins_by_lines():
    ece, bins = expected_calibration_error([0.95, 0.95, 0.15, 0.15], [1.0, 0.8, 0.15, 0.15])
    assert ece == pytest.approx(0.5 * abs(0.95 - 0.9))
    assert [b["lines"] for b in bins] == [2, 2]


def test_review_table_counts_what_a_threshold_sends_to_a_person():
    rows = review_table([0.9, 0.8, 0.4, 0.3], [1.0, 0.9, 0.5, 0.2], [True, False, False, False], [0.5])
    assert rows[0]["review_share"] == 0.5
    assert rows[0]["accepted_char_accuracy"] == pytest.approx(0.95)
    assert rows[0]["accepted_line_accuracy"] == 0.5


def test_calibration_round_trips_and_refuses_bad_knots():
    calibration = Calibration(x=(0.2, 0.8), y=(0.1, 0.9), review_below=0.7)
    assert Calibration.from_dict(json.loads(json.dumps(calibration.to_dict()))) == calibration
    assert calibration(0.0) == 0.1 and calibration(0.5) == pytest.approx(0.5) and calibration(1.0) == 0.9
    with pytest.raises(ValueError):
        Calibration(x=(0.5, 0.2), y=(0.1, 0.9))


def test_a_release_with_a_calibration_reports_calibrated_confidence(tiny_release, real_images, tmp_path):
    calibrated = tmp_path / "calibrated"
    shutil.copytree(tiny_release, calibrated)
    config = json.loads((calibrated / "config.json").read_text())
    config["metadata"]["calibration"] = Calibration(x=(0.0, 1.0), y=(0.25, 0.25)).to_dict()
    (calibrated / "config.json").write_text(json.dumps(config))
    paths = [p for p, _ in real_images[:3]]
    raw = Predictor.from_release(tiny_release).predict(paths)
    flat = Predictor.from_release(calibrated).predict(paths)
    assert [p.text for p in flat] == [p.text for p in raw]
    assert all(p.confidence == pytest.approx(0.25) for p in flat)
    assert len({round(p.confidence, 6) for p in raw}) > 1


def test_release_calibrate_fits_and_stores_a_calibration(tiny_release, data_root, tmp_path):
    release = tmp_path / "release"
    shutil.copytree(tiny_release, release)
    plot = tmp_path / "reliability.png"
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "release.py"), "calibrate", str(release),
        "--data-root", str(data_root), "--limit", "70", "--sources", "kalapa", "--threads", "1",
        "--target-accuracy", "0", "--plot", str(plot),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    stored = json.loads((release / "config.json").read_text())["metadata"]["calibration"]
    assert stored["lines"] == 70 and 0 <= stored["ece"] <= stored["ece_raw"] + 1e-9
    # a target of 0 is reached by the lowest threshold of the table, which accepts every line
    assert stored["review_below"] == 0.1
    assert plot.stat().st_size > 1000 and "| review below |" in out.stdout
    calibration = Calibration.from_dict(stored)
    assert Predictor.from_release(release).calibration == calibration
