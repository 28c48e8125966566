"""Writer-grouped folds: no writer split, balanced, reproducible, and the split selection of a run."""

import random
from collections import Counter

import pytest

from vihtr.data.folds import assign_folds, read_folds_csv, select_fold, write_folds_csv


def writer_lines(n_writers: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"w{w}" for w in range(n_writers) for _ in range(rng.randint(1, 60))]


def test_folds_never_split_a_writer_and_are_balanced():
    groups = writer_lines(174)
    folds = assign_folds(groups)
    assert set(folds) == set(groups) and set(folds.values()) == set(range(5))
    load = Counter(folds[g] for g in groups)
    assert max(load.values()) - min(load.values()) <= max(Counter(groups).values())


def test_folds_are_reproducible_and_depend_on_the_seed():
    groups = writer_lines(80)
    assert assign_folds(groups, seed=3) == assign_folds(list(reversed(groups)), seed=3)
    assert assign_folds(groups, seed=3) != assign_folds(groups, seed=4)


def test_train_and_val_partition_the_lines_by_writer(tmp_path):
    groups = writer_lines(20)
    keys = [f"line{i}" for i in range(len(groups))]
    for k in range(5):
        train = select_fold(keys, groups, k, "train")
        val = select_fold(keys, groups, k, "val")
        assert sorted(train + val) == list(range(len(keys)))
        assert not {groups[i] for i in train} & {groups[i] for i in val}
    assert select_fold(keys, groups, "all", "val") == list(range(len(keys)))
    assert select_fold(keys, groups, -1, "train") == list(range(len(keys)))

    # the CSV written by the script gives the same split as the in-memory assignment
    csv_path = tmp_path / "folds.csv"
    write_folds_csv(csv_path, keys, ["t"] * len(keys), groups, assign_folds(groups))
    assert read_folds_csv(csv_path)[keys[0]] == assign_folds(groups)[groups[0]]
    assert select_fold(keys, groups, 2, "val", csv_path) == select_fold(keys, groups, 2, "val")
    # lines the CSV does not list are left out of both sides
    assert len(select_fold([*keys, "new"], [*groups, "w0"], 2, "train", csv_path)) == len(
        select_fold(keys, groups, 2, "train")
    )


def test_rewriting_the_folds_never_leaves_half_a_file(tmp_path):
    """A run reads the folds while `make data` rewrites them: a failed write keeps the old file whole."""
    csv_path = tmp_path / "kalapa_folds.csv"
    keys, groups = ["a/1.jpg", "b/1.jpg"], ["a", "b"]
    write_folds_csv(csv_path, keys, ["t", "t"], groups, {"a": 0, "b": 1})
    before = csv_path.read_bytes()
    with pytest.raises(KeyError):  # a writer without a fold: the write fails half way
        write_folds_csv(csv_path, keys + ["c/1.jpg"], ["t"] * 3, groups + ["c"], {"a": 0, "b": 1})
    assert csv_path.read_bytes() == before and read_folds_csv(csv_path) == {"a/1.jpg": 0, "b/1.jpg": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["kalapa_folds.csv"]  # no temporary file left
