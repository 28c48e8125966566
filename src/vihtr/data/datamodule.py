"""The LightningDataModule: an endless weighted mixture of line sources for training, fixed subsets for validation.

Training is a stream: each sample picks a source by weight and a line uniformly, from a `random.Random`
seeded per run, per worker and per pass, so every epoch renders and augments anew. Samples are grouped
by width into batches (little padding). Validation uses fixed (line, seed) pairs, so its images are the
same every epoch. Every batch is a dict:

    images          float B x C x H x Wmax (paper-padded, `pad_batch`)
    widths          long  B
    targets         long  B x Lmax (`charset.encode`: SOS ... EOS, right-padded with PAD=0)
    target_lengths  long  B (SOS and EOS included)
    texts, sources, groups   list[str] (label, source name, writer id)
"""

from __future__ import annotations

import inspect
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence

import cv2
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from vihtr.data.preprocess import Preprocess, pad_batch
from vihtr.data.sources.base import LineSource, Sample
from vihtr.data.sources.real import as_charset
from vihtr.text.charset import PAD, Charset, UnknownCharReport

log = logging.getLogger(__name__)

Augment = Callable  # (PIL image, random.Random) -> PIL image


class IgnoreRng:
    """Adapts a plain PIL -> PIL augmenter to the (image, rng) call (a class, so workers can pickle it)."""

    def __init__(self, augment: Callable) -> None:
        self.augment = augment

    def __call__(self, image, rng: random.Random):
        return self.augment(image)


def as_augment(augment: Callable | None) -> Augment | None:
    """`augment(image, rng)` as is (e.g. `vihtr.data.augment.LineAugment`); `augment(image)` adapted."""
    if augment is None:
        return None
    try:
        inspect.signature(augment).bind(None, None)
        return augment
    except TypeError:
        return IgnoreRng(augment)


def named_sources(sources) -> dict[str, LineSource]:
    """Sources from a list or a mapping (config keys); entries set to null are dropped."""
    if sources is None:
        return {}
    if isinstance(sources, Mapping):
        return {str(k): s for k, s in sources.items() if s is not None}
    return {s.name: s for s in sources if s is not None}


def mixture_weights(sources: dict[str, LineSource], weights) -> list[float]:
    """One weight per source: from a mapping (by config key or source name), a list, or equal when None."""
    if weights is None:
        return [1.0] * len(sources)
    if isinstance(weights, Mapping):
        return [float(weights.get(key, weights.get(src.name, 0.0))) for key, src in sources.items()]
    if len(weights) != len(sources):
        raise ValueError(f"{len(weights)} weights for {len(sources)} sources")
    return [float(w) for w in weights]


class LineEncoder:
    """Sample -> model input: optional augmentation, preprocessing, label to token ids (or None to skip)."""

    def __init__(self, charset: Charset, preprocess: Preprocess, max_label_length: int | None) -> None:
        self.charset = charset
        self.preprocess = preprocess
        self.max_label_length = max_label_length
        self.skipped_long = 0
        self.unknown = UnknownCharReport()

    def __call__(self, sample, rng: random.Random, augment: Augment | None = None) -> dict | None:
        if self.max_label_length is not None and len(sample.text) > self.max_label_length:
            self.skipped_long += 1
            if self.skipped_long == 1:
                log.warning(
                    "%s: skipping labels longer than %d characters", sample.source, self.max_label_length
                )
            return None
        unknown = self.charset.unknown(sample.text)
        if unknown:  # real sources drop these up front; this catches generated text
            if not self.unknown:
                log.warning(
                    "%s: skipping a label with characters outside the charset: %r", sample.source, sample.text
                )
            self.unknown.add(sample.source, sample.text, unknown)
            return None
        image = augment(sample.image, rng) if augment is not None else sample.image
        return {
            "image": self.preprocess(image),
            "ids": self.charset.encode(sample.text),
            "text": sample.text,
            "source": sample.source,
            "group": sample.group,
        }


def collate(items: Sequence[dict], width_multiple: int = 1) -> dict:
    images, widths = pad_batch([it["image"] for it in items], width_multiple)
    lengths = torch.tensor([len(it["ids"]) for it in items], dtype=torch.long)
    targets = torch.full((len(items), int(lengths.max())), PAD, dtype=torch.long)
    for i, it in enumerate(items):
        targets[i, : len(it["ids"])] = torch.tensor(it["ids"], dtype=torch.long)
    return {
        "images": images,
        "widths": widths,
        "targets": targets,
        "target_lengths": lengths,
        "texts": [it["text"] for it in items],
        "sources": [it["source"] for it in items],
        "groups": [it["group"] for it in items],
    }


def draw_usable(
    source: LineSource, index: int, rng: random.Random, encode: LineEncoder, augment=None
) -> tuple[Sample, dict]:
    """The line at `index`, or the next usable one when a label is skipped: (sample, encoded item)."""
    for step in range(len(source)):
        sample = source.get((index + step) % len(source), rng)
        item = encode(sample, rng, augment)
        if item is not None:
            return sample, item
    raise ValueError(f"{source.name}: no line with a usable label")


def draw_valid(source: LineSource, index: int, rng: random.Random, encode: LineEncoder, augment=None) -> dict:
    """The encoded line at `index`, or the next usable one when a label is skipped."""
    return draw_usable(source, index, rng, encode, augment)[1]


class MixtureStream(IterableDataset):
    """Batches from a weighted mixture of sources; `n_batches` per pass, split over the DataLoader workers."""

    def __init__(
        self,
        sources: dict[str, LineSource],
        weights: list[float],
        encode: LineEncoder,
        batch_size: int,
        n_batches: int,
        seed: int,
        augment: Augment | None = None,
        augment_sources: set[str] | None = None,
        bucket_batches: int = 8,
        rank: int = 0,
        width_multiple: int = 1,
        offset: int = 0,
    ) -> None:
        self.sources = list(sources.values())
        self.weights = weights
        self.encode = encode
        self.batch_size = batch_size
        self.n_batches = n_batches
        self.seed = seed
        self.augment = augment
        self.augment_sources = augment_sources
        self.bucket_batches = max(1, bucket_batches)
        self.rank = rank  # DDP processes share the seed: the rank keeps their streams apart
        self.width_multiple = width_multiple
        # the step a run starts at: a resumed run draws new lines, not its first ones again
        self.offset = offset
        self._passes = 0  # counted in each process's own copy: persistent workers still change every epoch

    def __len__(self) -> int:
        return self.n_batches

    def _sample(self, rng: random.Random) -> dict:
        source = rng.choices(self.sources, weights=self.weights)[0]
        augment = (
            self.augment if self.augment_sources is None or source.name in self.augment_sources else None
        )
        return draw_valid(source, rng.randrange(len(source)), rng, self.encode, augment)

    def __iter__(self):
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        # a fresh DataLoader iterator gives its workers new seeds; the pass count covers persistent workers
        # and the main process; `self.seed` keeps a run reproducible
        worker_seed = info.seed if info else 0
        stream = f"{self.seed}:{self.rank}:{worker_seed}:{worker}:{self._passes}"
        rng = random.Random(f"{stream}:{self.offset}" if self.offset else stream)
        self._passes += 1
        todo = self.n_batches // n_workers + (worker < self.n_batches % n_workers)
        while todo > 0:
            n = min(self.bucket_batches, todo)
            items = [self._sample(rng) for _ in range(n * self.batch_size)]
            items.sort(key=lambda it: it["image"].shape[-1])  # similar widths share a batch
            batches = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
            rng.shuffle(batches)
            for batch in batches:
                yield collate(batch, self.width_multiple)
            todo -= n


class FixedLines(Dataset):
    """Validation lines: fixed (source, index, seed) triples, so each epoch sees identical images."""

    def __init__(
        self, sources: dict[str, LineSource], size_per_source: int | None, encode: LineEncoder, seed: int
    ) -> None:
        self.sources = list(sources.values())
        self.encode = encode
        self.items = []
        for s, source in enumerate(self.sources):
            indices = list(range(len(source)))
            if size_per_source is not None and len(source) > size_per_source:
                indices = sorted(random.Random(f"{seed}:{source.name}").sample(indices, size_per_source))
            self.items += [(s, i) for i in indices]
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> dict:
        return self._draw(k)[1]

    def sample(self, k: int) -> Sample:
        """The k-th line as its source gives it (image before preprocessing): what evaluation reads."""
        return self._draw(k)[0]

    def _draw(self, k: int) -> tuple[Sample, dict]:
        s, index = self.items[k]
        source = self.sources[s]
        return draw_usable(source, index, random.Random(f"{self.seed}:{source.name}:{index}"), self.encode)


class LineDataModule(pl.LightningDataModule):
    """Training mixture + fixed validation (and test) sets of line sources; see the module docstring for batches.

    `train_weights` maps source keys (or names) to mixture weights, or lists them in order. `augment`
    (`augment(image, rng)` or `augment(image)`, PIL -> PIL) is applied to training samples from `augment_sources` (names; None = all). The test set
    is `test_sources` in full, or the validation sources in full when not given.
    """

    def __init__(
        self,
        train_sources,
        val_sources,
        charset: Charset | str | None = None,
        preprocess: Preprocess | Mapping | None = None,
        train_weights=None,
        test_sources=None,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        samples_per_epoch: int = 10_000,
        val_size_per_source: int | None = 500,
        augment: Augment | None = None,
        augment_sources: Sequence[str] | None = None,
        bucket_by_width: bool = True,
        bucket_batches: int = 8,
        width_multiple: int = 1,
        max_label_length: int | None = None,
        persistent_workers: bool = False,
        pin_memory: bool = False,
        seed: int | None = None,
        stream_offset: int = 0,
        sources=None,
    ) -> None:
        """`max_label_length`: longer labels are skipped (None: none). `width_multiple`: training batches are
        padded to a multiple of this many px (a GPU wants few batch shapes). `sources`: the definitions the
        data configs take `train_sources` and `val_sources` from (`vihtr.split`); not read here.
        `stream_offset`: steps already trained in this schedule before the run began (a long run continued
        from a release); the training stream adds the trainer's own step when it starts or resumes."""
        super().__init__()
        self.train_sources = named_sources(train_sources)
        self.val_sources = named_sources(val_sources)
        self.test_sources = named_sources(test_sources) if test_sources is not None else self.val_sources
        self.weights = mixture_weights(self.train_sources, _plain(train_weights))
        # a weight of 0 switches a source off (configs override weights, not the source list)
        keep = [w > 0 for w in self.weights]
        self.train_sources = {k: s for (k, s), on in zip(self.train_sources.items(), keep) if on}
        self.weights = [w for w in self.weights if w > 0]
        self.charset = as_charset(charset)
        self.preprocess = _as_preprocess(preprocess)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.samples_per_epoch = samples_per_epoch
        self.val_size_per_source = val_size_per_source
        self.augment = as_augment(augment)
        self.augment_sources = set(augment_sources) if augment_sources is not None else None
        self.bucket_batches = bucket_batches if bucket_by_width else 1
        self.width_multiple = width_multiple
        self.encode = LineEncoder(self.charset, self.preprocess, max_label_length)
        self.persistent_workers = persistent_workers and num_workers > 0
        self.pin_memory = pin_memory
        self.seed = seed if seed is not None else torch.initial_seed() % 2**32
        self.stream_offset = stream_offset
        for name, source in {**self.train_sources, **self.val_sources, **self.test_sources}.items():
            if len(source) == 0:
                raise ValueError(f"source {name!r} has no lines")

    def train_dataset(self) -> MixtureStream:
        if not self.train_sources:
            raise ValueError("no training source with a weight above 0")
        return MixtureStream(
            self.train_sources,
            self.weights,
            self.encode,
            self.batch_size,
            n_batches=max(1, math.ceil(self.samples_per_epoch / self.batch_size)),
            seed=self.seed,
            augment=self.augment,
            augment_sources=self.augment_sources,
            bucket_batches=self.bucket_batches,
            rank=self.trainer.global_rank if self.trainer is not None else 0,
            width_multiple=self.width_multiple,
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and not hasattr(self, "train_set"):
            self.train_set = self.train_dataset()
        if stage in (None, "fit", "validate") and not hasattr(self, "val_set"):
            self.val_set = FixedLines(self.val_sources, self.val_size_per_source, self.encode, self.seed)
            log.info("validation: %d lines from %s", len(self.val_set), list(self.val_sources))
        if stage in (None, "test") and not hasattr(self, "test_set"):
            self.test_set = FixedLines(self.test_sources, None, self.encode, self.seed)

    def _loader(self, dataset, batch_size: int | None, collate_fn=None) -> DataLoader:
        if self.num_workers:
            # Workers are the parallelism: OpenCV's own pool (every core, in every worker) would oversubscribe
            # the machine. Set here, before the workers fork: calling it inside a forked worker after this
            # process used the pool hangs the worker.
            cv2.setNumThreads(1)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_fn,
            persistent_workers=self.persistent_workers,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        # called after a checkpoint restored the step: a resumed run does not replay the lines it began with
        self.train_set.offset = self.stream_offset + (self.trainer.global_step if self.trainer else 0)
        return self._loader(self.train_set, None)  # the stream yields whole batches

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        return self._loader(self.val_set, self.val_batch_size, collate)

    def test_dataloader(self) -> DataLoader:
        self.setup("test")
        return self._loader(self.test_set, self.val_batch_size, collate)


def _plain(value):
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def _as_preprocess(preprocess) -> Preprocess:
    if preprocess is None:
        return Preprocess()
    if isinstance(preprocess, Preprocess):
        return preprocess
    return Preprocess.from_dict(_plain(preprocess))
