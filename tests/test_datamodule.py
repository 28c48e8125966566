"""LineDataModule: the batch contract, the mixture, fixed validation, label filtering, workers, bucketing."""

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vihtr.data.datamodule import LineDataModule
from vihtr.data.preprocess import Preprocess
from vihtr.data.sources.base import Sample
from vihtr.data.sources.inkml import InkMLSource
from vihtr.data.sources.real import LineFolderSource
from vihtr.text.charset import EOS, PAD, SOS, Charset

FIXTURES = Path(__file__).parent / "fixtures"
PRE = Preprocess(height=16, max_width=256, min_width=16, width_multiple=8)


class TextSource:
    """A generated source whose labels are given: tests label filtering without the synthetic renderers."""

    def __init__(self, name: str, texts: list[str]) -> None:
        self.name, self.texts = name, texts

    def __len__(self) -> int:
        return len(self.texts)

    def get(self, index: int, rng: random.Random) -> Sample:
        image = Image.new("RGB", (8 * len(self.texts[index]) + rng.randrange(8), 16), "white")
        return Sample(image=image, text=self.texts[index], source=self.name)


def make(**kw) -> LineDataModule:
    args = dict(
        train_sources={
            "kalapa": LineFolderSource(FIXTURES / "lines"),
            "vnondb": InkMLSource(FIXTURES / "inkml", height=16),
        },
        val_sources=[LineFolderSource(FIXTURES / "lines"), InkMLSource(FIXTURES / "inkml", height=16)],
        charset=Charset(),
        preprocess=PRE,
        batch_size=8,
        samples_per_epoch=64,
        val_size_per_source=6,
        seed=1,
    )
    return LineDataModule(**{**args, **kw})


def test_batches_follow_the_contract():
    dm = make()
    batch = next(iter(dm.train_dataloader()))
    b = len(batch["texts"])
    assert b == 8 and batch["images"].dtype == torch.float32
    assert batch["images"].shape[:3] == (b, 1, 16) and batch["images"].shape[3] == int(batch["widths"].max())
    assert batch["widths"].dtype == batch["targets"].dtype == batch["target_lengths"].dtype == torch.long
    charset = Charset()
    for i in range(b):
        n, w = int(batch["target_lengths"][i]), int(batch["widths"][i])
        row = batch["targets"][i]
        assert row[0] == SOS and row[n - 1] == EOS and (row[n:] == PAD).all()
        assert n == len(batch["texts"][i]) + 2 and charset.decode(row[1:]) == batch["texts"][i]
        assert (batch["images"][i, :, :, w:] == 1.0).all()  # padding is paper
    assert set(batch["sources"]) <= {"kalapa", "vnondb"} and all(batch["groups"])
    assert len(dm.train_dataloader()) == 8


def test_training_mixture_follows_the_weights_and_changes_every_pass():
    dm = make(train_weights={"kalapa": 3, "vnondb": 1}, samples_per_epoch=480, bucket_batches=4)
    loader = dm.train_dataloader()
    first = [b for b in loader]
    counts = Counter(s for b in first for s in b["sources"])
    assert sum(counts.values()) == 480
    assert 0.68 < counts["kalapa"] / 480 < 0.82
    second = next(iter(loader))
    assert not torch.equal(first[0]["targets"], second["targets"]) or not torch.equal(
        first[0]["images"], second["images"]
    )
    zero = make(train_weights={"kalapa": 0, "vnondb": 1})
    assert {s for b in zero.train_dataloader() for s in b["sources"]} == {"vnondb"}


def test_validation_is_a_fixed_subset_identical_every_pass():
    dm = make()
    one, two = list(dm.val_dataloader()), list(dm.val_dataloader())
    assert sum(len(b["texts"]) for b in one) == 12  # 6 per source
    for a, b in zip(one, two):
        assert a["texts"] == b["texts"] and torch.equal(a["images"], b["images"])
    assert Counter(s for b in one for s in b["sources"]) == {"kalapa": 6, "vnondb": 6}
    assert sum(len(b["texts"]) for b in dm.test_dataloader()) == 20  # the test set is every line


def test_long_and_unknown_labels_are_skipped_and_counted():
    texts = ["ngắn", "x" * 40, "giá €5", "dài vừa"]
    dm = make(train_sources=[TextSource("gen", texts)], max_label_length=10, samples_per_epoch=80)
    seen = {t for b in dm.train_dataloader() for t in b["texts"]}
    assert seen == {"ngắn", "dài vừa"}
    assert dm.encode.skipped_long > 0 and dm.encode.unknown.labels["gen"] > 0


def test_bucketing_by_width_wastes_less_padding():
    def padding(dm) -> float:
        batches = list(dm.train_dataloader())
        return sum(float((b["widths"].max() - b["widths"]).sum()) for b in batches)

    texts = [" ".join(["chữ"] * n) for n in range(1, 30)]
    gen = {"gen": TextSource("gen", texts)}
    assert padding(make(train_sources=gen, bucket_by_width=True, samples_per_epoch=256)) < 0.5 * padding(
        make(train_sources=gen, bucket_by_width=False, samples_per_epoch=256)
    )


def test_training_batches_can_be_padded_to_a_width_multiple():
    for batch in make(width_multiple=48).train_dataloader():
        assert (
            batch["images"].shape[3] % 48 == 0 and batch["images"].shape[3] - int(batch["widths"].max()) < 48
        )
        for i, w in enumerate(batch["widths"].tolist()):
            assert (batch["images"][i, :, :, w:] == 1.0).all()


class OpenCvThreadsSource(TextSource):
    """Labels each line with the OpenCV threads of the process that drew it."""

    def get(self, index: int, rng: random.Random) -> Sample:
        import cv2

        cv2.GaussianBlur(np.zeros((256, 1024), np.float32), (5, 5), 1.0)  # uses the pool, if any
        return replace(super().get(index, rng), text=str(cv2.getNumThreads()))


@pytest.mark.timeout(120)
def test_workers_draw_with_one_opencv_thread_even_after_this_process_used_its_pool():
    import cv2

    cv2.setNumThreads(2)
    cv2.GaussianBlur(np.zeros((256, 1024), np.float32), (5, 5), 1.0)  # the parent's pool is running
    try:
        dm = make(train_sources={"gen": OpenCvThreadsSource("gen", ["x"] * 8)}, num_workers=2)
        texts = {t for batch in dm.train_dataloader() for t in batch["texts"]}
    finally:
        cv2.setNumThreads(-1)
    assert texts == {"1"}  # the workers are the parallelism: 14 pools of 16 threads on a 16-core machine


@pytest.mark.parametrize("persistent", [False, True])
def test_two_workers_draw_different_samples(persistent):
    dm = make(num_workers=2, persistent_workers=persistent, samples_per_epoch=32)
    loader = dm.train_dataloader()
    epoch1 = [b["texts"] for b in loader]
    epoch2 = [b["texts"] for b in loader]
    assert len(epoch1) == 4 and epoch1[0] != epoch1[1]  # consecutive batches come from different workers
    assert epoch1 != epoch2
    val = [b["texts"] for b in dm.val_dataloader()]
    assert val == [b["texts"] for b in dm.val_dataloader()]


def test_tiny_config_builds_a_working_datamodule():
    import hydra
    from hydra import compose, initialize_config_dir

    from vihtr.training.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["data=tiny", "fold=2", "image.height=16", "image.max_width=128"])
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.batch_size == 4 and dm.preprocess.height == 16
    train_writers = {g for s in dm.train_sources.values() for g in s.groups}
    val_writers = {g for s in dm.val_sources.values() for g in s.groups}
    assert len(val_writers) == 2 and not train_writers & val_writers  # one fixture writer per dataset
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape[:3] == (4, 1, 16)
    assert {s for b in dm.val_dataloader() for s in b["sources"]} == {"kalapa", "vnondb"}


def blacken(image: Image.Image) -> Image.Image:
    return Image.new("RGB", image.size, "black")


def blacken_with_rng(image: Image.Image, rng: random.Random) -> Image.Image:
    return blacken(image)


@pytest.mark.parametrize("augment", [blacken, blacken_with_rng])
def test_augmentation_applies_to_the_named_sources_only(augment):
    dm = make(augment=augment, augment_sources=["kalapa"], samples_per_epoch=32)
    for batch in dm.train_dataloader():
        for i, source in enumerate(batch["sources"]):
            left_edge = batch["images"][
                i, :, :, 0
            ]  # paper in every unaugmented line (the right end may be padding)
            assert (left_edge.max() == -1.0) == (source == "kalapa")
    assert all((b["images"] > 0).any() for b in dm.val_dataloader())  # validation is never augmented


@pytest.mark.parametrize("data", ["default", "tiny", "pretrain", "finetune"])
def test_every_data_config_weights_its_own_sources(data):
    from hydra import compose, initialize_config_dir

    from vihtr.training.config import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={data}", "fold=3"]).data
    assert set(cfg.train_weights) == set(cfg.train_sources) and sum(cfg.train_weights.values()) > 0
    assert set(cfg.augment_sources) <= set(cfg.train_sources)
    for split, sources in (("train", cfg.train_sources), ("val", cfg.val_sources)):
        for source in sources.values():
            if "fold" in source:  # real sources: one side of the run's fold
                assert source.fold == 3 and source.split == split


def test_ddp_ranks_draw_different_samples():
    """DDP processes share the seed; the rank must still give each its own stream."""
    streams = []
    for rank in (0, 1):
        dm = make(samples_per_epoch=32)
        dm.trainer = type("FakeTrainer", (), {"global_rank": rank, "global_step": 0})()
        dm.setup("fit")
        streams.append([b["texts"] for b in dm.train_dataloader()])
    assert streams[0] != streams[1]


def test_a_resumed_run_draws_new_lines_and_the_same_step_the_same_ones():
    """The stream follows the step a run starts at (a resumed run, or a long schedule continued from a
    release: `stream_offset`), so a run stopped and resumed does not see its first lines again."""

    def stream(step: int, offset: int = 0) -> list:
        dm = make(samples_per_epoch=32, stream_offset=offset)
        dm.trainer = type("FakeTrainer", (), {"global_rank": 0, "global_step": step})()
        dm.setup("fit")
        return [b["texts"] for b in dm.train_dataloader()]

    assert stream(0) == stream(0)
    assert stream(400) != stream(0)
    assert stream(400) == stream(0, offset=400)
