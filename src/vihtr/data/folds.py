"""Writer-grouped folds: every line of one writer lands in the same fold, so validation never sees a known hand.

Folds are assigned per group (writer / form), balanced by line count, from a seed: the same lines and
seed always give the same folds, whether computed in memory by a source or written by
`scripts/make_folds.py` to `train_folds.csv` (`path,text,writer,fold`, the seed project's format).
A run validates on fold k and trains on the others; fold "all" (or -1) trains and validates on everything.
"""

from __future__ import annotations

import csv
import logging
import os
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

N_FOLDS = 5
DEFAULT_SEED = 0
FOLD_COLUMNS = ("path", "text", "writer", "fold")


def assign_folds(groups: Sequence[str], n_folds: int = N_FOLDS, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Map each distinct group to a fold in 0..n_folds-1, balancing the number of lines per fold.

    Groups are shuffled by the seed, then placed largest first into the fold with the fewest lines so far
    (ties broken by fold number), which keeps folds within one group's size of each other.
    """
    sizes = Counter(groups)
    if len(sizes) < n_folds:
        raise ValueError(f"{len(sizes)} groups cannot fill {n_folds} folds")
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sizes[g])  # stable: equal sizes keep their shuffled order
    load = [0] * n_folds
    folds = {}
    for group in order:
        fold = min(range(n_folds), key=lambda k: (load[k], k))
        folds[group] = fold
        load[fold] += sizes[group]
    return folds


def write_folds_csv(path: str | os.PathLike, keys, texts, groups, folds: dict[str, int]) -> None:
    """Write one row per line: `path,text,writer,fold`. Atomically: a training run reading the folds while
    `make folds` (or `make data`, which runs it) rewrites them sees the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(FOLD_COLUMNS)
            for key, text, group in zip(keys, texts, groups):
                writer.writerow([key, text, group, folds[group]])
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_folds_csv(path: str | os.PathLike) -> dict[str, int]:
    """`train_folds.csv` -> {path: fold}."""
    with open(path, newline="", encoding="utf-8") as f:
        return {row["path"]: int(row["fold"]) for row in csv.DictReader(f)}


def parse_fold(fold) -> int | None:
    """0..n-1 -> that fold; "all", -1 or None -> None (no held-out fold)."""
    if fold is None or fold == "all" or fold == -1:
        return None
    return int(fold)


def select_fold(
    keys: Sequence[str],
    groups: Sequence[str],
    fold,
    split: str,
    folds_csv: str | os.PathLike | None = None,
    n_folds: int = N_FOLDS,
    seed: int = DEFAULT_SEED,
) -> list[int]:
    """Positions of the lines a split keeps: `train` = folds != fold, `val` = fold == fold.

    Fold numbers come from `folds_csv` when it exists (lines it does not list are left out, with a
    warning), otherwise from `assign_folds(groups, n_folds, seed)`, the same function the script uses.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be train or val, not {split!r}")
    k = parse_fold(fold)
    if k is None:
        return list(range(len(keys)))
    if folds_csv is not None and os.path.isfile(folds_csv):
        by_key = read_folds_csv(folds_csv)
        line_folds = [by_key.get(key) for key in keys]
        unlisted = sum(f is None for f in line_folds)
        if unlisted:
            log.warning("%d line(s) are not in %s and are left out of both splits", unlisted, folds_csv)
    else:
        if folds_csv is not None:
            log.info("%s not found: assigning writer folds in memory (seed %d)", folds_csv, seed)
        by_group = assign_folds(groups, n_folds, seed)
        line_folds = [by_group[g] for g in groups]
    if split == "val":
        return [i for i, f in enumerate(line_folds) if f == k]
    return [i for i, f in enumerate(line_folds) if f is not None and f != k]
