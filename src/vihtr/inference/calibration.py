"""Line confidence a user can act on: the model's raw confidence mapped to the share of characters read right.

The raw confidence of a line is the geometric mean of its characters' probabilities (the model's own,
see `vihtr.inference.predictor.to_prediction`). It ranks lines well but is not a frequency. A release
stores a monotone piecewise-linear map, fitted on held-out lines by isotonic regression, from that raw
value to the line's character accuracy (1 - CER, floored at 0); after it, "confidence 0.90" means that
lines given 0.90 had about 90 % of their characters right on held-out data. `scripts/calibrate.py`
fits it and reports the expected calibration error and a review threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TARGET = "char_accuracy"  # what a calibrated confidence estimates: 1 - CER of the line, floored at 0


@dataclass(frozen=True)
class Calibration:
    """A monotone map raw -> calibrated confidence: linear between the knots `(x, y)`, flat outside them."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    target: str = TARGET
    review_below: float | None = None  # the documented threshold: lines under it go to a person

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or not self.x:
            raise ValueError("calibration needs as many x as y knots, at least one")
        if any(b < a for a, b in zip(self.x, self.x[1:])) or any(b < a for a, b in zip(self.y, self.y[1:])):
            raise ValueError("calibration knots must be non-decreasing")

    def __call__(self, raw: float) -> float:
        return float(np.interp(raw, self.x, self.y))

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "x": [round(v, 6) for v in self.x],
            "y": [round(v, 6) for v in self.y],
            "review_below": self.review_below,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(
            x=tuple(float(v) for v in d["x"]),
            y=tuple(float(v) for v in d["y"]),
            target=d.get("target", TARGET),
            review_below=d.get("review_below"),
        )


def isotonic_fit(raw: Sequence[float], target: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators: the non-decreasing step function of `raw` closest to `target` (least squares).
    Returns the knots (mean raw, fitted value) of its blocks, in increasing raw order."""
    order = np.argsort(np.asarray(raw, dtype=float), kind="stable")
    xs = np.asarray(raw, dtype=float)[order]
    ys = np.asarray(target, dtype=float)[order]
    blocks: list[list[float]] = []  # [sum x, sum y, count]
    for x, y in zip(xs, ys):
        blocks.append([x, y, 1.0])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            sx, sy, n = blocks.pop()
            blocks[-1][0] += sx
            blocks[-1][1] += sy
            blocks[-1][2] += n
    knots_x = np.array([b[0] / b[2] for b in blocks])
    knots_y = np.array([b[1] / b[2] for b in blocks])
    return knots_x, knots_y


def fit_calibration(
    raw: Sequence[float], target: Sequence[float], review_below: float | None = None
) -> Calibration:
    """Isotonic regression of `target` (per-line character accuracy) on `raw` (per-line raw confidence)."""
    if len(raw) != len(target) or len(raw) < 2:
        raise ValueError("calibration needs at least two lines, as many targets as raw confidences")
    x, y = isotonic_fit(raw, target)
    return Calibration(
        x=tuple(float(v) for v in x),
        y=tuple(float(v) for v in np.clip(y, 0.0, 1.0)),
        review_below=review_below,
    )


def review_table(
    confidence: Sequence[float], accuracy: Sequence[float], exact: Sequence[bool], thresholds
) -> list[dict]:
    """For each threshold: the share of lines sent to review (confidence under it) and how well the
    accepted lines read (mean character accuracy, share read exactly)."""
    conf, acc, ex = (np.asarray(v, dtype=float) for v in (confidence, accuracy, exact))
    rows = []
    for t in thresholds:
        accepted = conf >= t
        rows.append(
            {
                "threshold": float(t),
                "review_share": float(1 - accepted.mean()),
                "accepted_char_accuracy": float(acc[accepted].mean()) if accepted.any() else float("nan"),
                "accepted_line_accuracy": float(ex[accepted].mean()) if accepted.any() else float("nan"),
            }
        )
    return rows


def expected_calibration_error(
    confidence: Sequence[float], target: Sequence[float], bins: int = 10
) -> tuple[float, list[dict]]:
    """ECE over equal-width confidence bins: the line-weighted mean |mean confidence - mean target| per bin.
    Returns (ece, per-bin rows with lines, mean confidence, mean target) for a reliability plot."""
    conf = np.asarray(confidence, dtype=float)
    tgt = np.asarray(target, dtype=float)
    if conf.size == 0:
        raise ValueError("no lines")
    index = np.minimum((conf * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = index == b
        if not mask.any():
            continue
        mean_conf, mean_tgt = float(conf[mask].mean()), float(tgt[mask].mean())
        ece += mask.sum() / conf.size * abs(mean_conf - mean_tgt)
        rows.append(
            {
                "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                "lines": int(mask.sum()),
                "confidence": mean_conf,
                "accuracy": mean_tgt,
            }
        )
    return float(ece), rows


def cross_fitted_calibration(
    raw: Sequence[float], accuracy: Sequence[float], groups: Sequence[str]
) -> tuple[Calibration, np.ndarray, float, float]:
    """The calibration a release stores, and how well it is calibrated on lines it never saw.

    Groups (writers) alternate between two halves; each half's lines are calibrated by the map fitted on the
    other half, so no line is scored by a map that saw it. The stored map is fitted on all lines, or is the
    identity when the raw confidence is already as well calibrated as the cross-fitted one.
    Returns (map, cross-fitted confidences, ECE of the raw confidence, ECE of the cross-fitted one)."""
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError("the held-out lines come from one writer: too few to cross-fit a calibration")
    raw_a, acc_a = np.asarray(raw, dtype=float), np.asarray(accuracy, dtype=float)
    half = np.array([names.index(g) % 2 for g in groups])
    crossed = np.empty_like(raw_a)
    for h in (0, 1):
        fitted = fit_calibration(raw_a[half != h], acc_a[half != h])
        crossed[half == h] = [fitted(r) for r in raw_a[half == h]]
    ece_raw, _ = expected_calibration_error(raw_a, acc_a)
    ece, _ = expected_calibration_error(crossed, acc_a)
    if ece_raw <= ece:  # nothing to correct: keep the raw value (a map of x = y)
        return Calibration(x=(0.0, 1.0), y=(0.0, 1.0)), raw_a, ece_raw, ece_raw
    return fit_calibration(raw_a, acc_a), crossed, ece_raw, ece


def with_review_threshold(calibration: Calibration, table: list[dict], target_accuracy: float) -> Calibration:
    """The map with its documented threshold: the lowest of `review_table`'s thresholds whose accepted lines
    reach `target_accuracy` mean character accuracy (None when none does)."""
    reaching = [row for row in table if row["accepted_char_accuracy"] >= target_accuracy]
    review_below = reaching[0]["threshold"] if reaching else None
    return Calibration(calibration.x, calibration.y, calibration.target, review_below)
