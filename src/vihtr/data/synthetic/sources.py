"""Synthetic line sources (the `LineSource` protocol): generated text, rendered in a handwriting font.

The text of line `index` depends only on (source name, seed, index), so a fixed validation set is
reproducible; the image depends on the `rng` passed to `get` (a fixed rng gives the same image, a
fresh one a new rendering each epoch). Constructors take plain keywords so Hydra configs can
`_target_` them; renderer and augmentation options are keywords too.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from vihtr.data.augment import LineAugment
from vihtr.data.folds import parse_fold
from vihtr.data.sources.base import Sample
from vihtr.data.sources.inkml import RenderStyle, render_strokes
from vihtr.data.syllables.bank import SyllableBank, default_bank_path
from vihtr.data.syllables.compose import compose, ink_mask, longest_run
from vihtr.data.synthetic.address import AddressGenerator
from vihtr.data.synthetic.corpus import (
    HELD_OUT_FOLD,
    CorpusLineGenerator,
    WordSequenceGenerator,
    default_corpus_files,
    in_charset,
    kalapa_labels,
    read_corpus,
)
from vihtr.data.synthetic.paper import PaperBank
from vihtr.data.synthetic.render import LineRenderer
from vihtr.paths import kalapa_root
from vihtr.text.normalize import normalize_text

_MAX_TRIES = 20  # redraws allowed when a generated text falls outside the charset


class SyntheticSource:
    """Base: `len()`, `text(index)`, `get(index, rng)`; subclasses implement `_generate(index, rng)`.

    style: the renderer's (`form`, or `v1` the first one); held_out_fold: the writer fold whose paper (and,
    for the corpus sources, text) is never used (None or "all": every writer); data_root: the real data
    that form paper comes from (default `$VIHTR_DATA_ROOT`; without it, procedural paper).
    """

    def __init__(
        self,
        name: str,
        size: int,
        seed: int = 0,
        tone_style: str = "keep",
        augment: bool = True,
        augment_strength: float = 0.5,
        height: Sequence[int] = (40, 80),
        fonts: Sequence[str] | None = None,
        form_line_prob: float = 0.4,
        jitter: float = 1.0,
        style: str = "form",
        held_out_fold: int | str | None = HELD_OUT_FOLD,
        data_root: str | os.PathLike | None = None,
    ) -> None:
        self.name = name
        self.size = int(size)
        self.seed = seed
        self.tone_style = tone_style
        self.held_out_fold = parse_fold(held_out_fold)
        # form paper comes from the training writers' crops only; without real data, procedural paper
        paper = PaperBank.maybe(data_root, self.held_out_fold) if style == "form" else None
        self.renderer = LineRenderer(
            height=tuple(height),
            fonts=list(fonts) if fonts else None,
            form_line_prob=form_line_prob,
            jitter=jitter,
            style=style,
            paper=paper,
        )
        self.augmenter = LineAugment(augment_strength) if augment else None

    def __len__(self) -> int:
        return self.size

    def text(self, index: int) -> str:
        """The text of line `index`: normalised to the source's tone style and inside the charset."""
        if not 0 <= index < self.size:
            raise IndexError(f"{self.name}: index {index} out of range 0..{self.size - 1}")
        rng = random.Random(f"{self.name}:{self.seed}:{index}")  # str seeds hash the same in every process
        for _ in range(_MAX_TRIES):
            text = normalize_text(self._generate(index, rng), self.tone_style)
            if text and in_charset(text):
                return text
        raise ValueError(f"{self.name}: no text inside the charset after {_MAX_TRIES} draws (index {index})")

    def get(self, index: int, rng: random.Random) -> Sample:
        text = self.text(index)
        image = self.renderer.render(text, rng)
        if self.augmenter is not None:
            image = self.augmenter(image, rng)
        return Sample(image=image, text=text, source=self.name)

    def _generate(self, index: int, rng: random.Random) -> str:
        raise NotImplementedError


class AddressSource(SyntheticSource):
    """Generated Vietnamese addresses styled like the Kalapa labels (see `address.AddressGenerator`)."""

    def __init__(
        self,
        name: str = "synth_address",
        size: int = 100_000,
        post_2025_prob: float | None = None,
        comma_prob: float | None = None,
        old_tone_prob: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(name=name, size=size, **kwargs)
        options = {"post_2025_prob": post_2025_prob, "comma_prob": comma_prob, "old_tone_prob": old_tone_prob}
        self.generator = AddressGenerator(**{k: v for k, v in options.items() if v is not None})

    def _generate(self, index: int, rng: random.Random) -> str:
        return self.generator.generate(rng)


class CorpusSource(SyntheticSource):
    """Word windows (random length) cut from corpus lines; default corpora: Kalapa labels + VNOnDB text of
    the writers outside `held_out_fold` (None: all of it)."""

    def __init__(
        self,
        name: str = "synth_corpus",
        size: int = 100_000,
        corpus_files: Sequence[str | os.PathLike] | None = None,
        words: Sequence[int] = (2, 12),
        held_out_fold: int | str | None = HELD_OUT_FOLD,
        **kwargs,
    ) -> None:
        super().__init__(name=name, size=size, held_out_fold=held_out_fold, **kwargs)
        files = list(corpus_files) if corpus_files else default_corpus_files(held_out_fold=self.held_out_fold)
        self.generator = CorpusLineGenerator.from_files(files, tuple(words))

    def _generate(self, index: int, rng: random.Random) -> str:
        return self.generator.generate(rng)


class RealLabelSource(SyntheticSource):
    """Real labels re-rendered in synthetic hands: line `index` is label `index % len(labels)`. Default
    labels: Kalapa's, without the writers of `held_out_fold` (None: all of them)."""

    def __init__(
        self,
        name: str = "synth_real_labels",
        labels_file: str | os.PathLike | None = None,
        size: int | None = None,
        held_out_fold: int | str | None = HELD_OUT_FOLD,
        **kwargs,
    ) -> None:
        path = labels_file or kalapa_labels(held_out_fold=parse_fold(held_out_fold))
        if path is None:
            raise FileNotFoundError(f"no Kalapa labels under {kalapa_root()} (set VIHTR_DATA_ROOT)")
        self.labels = read_corpus(path)
        super().__init__(name=name, size=size or len(self.labels), held_out_fold=held_out_fold, **kwargs)

    def _generate(self, index: int, rng: random.Random) -> str:
        return self.labels[index % len(self.labels)]


class WordSource(SyntheticSource):
    """Random sequences of Vietnamese words from the vendored word list."""

    def __init__(
        self,
        name: str = "synth_words",
        size: int = 100_000,
        words: Sequence[int] = (2, 8),
        capitalize_prob: float = 0.3,
        **kwargs,
    ) -> None:
        super().__init__(name=name, size=size, **kwargs)
        self.generator = WordSequenceGenerator(tuple(words), capitalize_prob)

    def _generate(self, index: int, rng: random.Random) -> str:
        return self.generator.generate(rng)


class SyllableSource(SyntheticSource):
    """New lines in real handwriting: a text written by one VNOnDB writer with the syllables the bank holds
    (`vihtr.data.syllables`; built once by `scripts/build_syllables.py`, from the training folds only).

    Texts: generated addresses and corpus windows (`text_weights`), cut to their longest run of syllables
    the bank holds (at least `min_words`); a draw with no such run falls back to bank syllables at random.
    Looks: `kalapa_look` of the renderings are laid on the renderer's paper as a scan (the `form` style: a
    Kalapa training crop with its writing removed), the rest drawn as the real VNOnDB lines are."""

    def __init__(
        self,
        name: str = "synth_strokes",
        size: int = 100_000,
        bank_path: str | os.PathLike | None = None,
        text_weights: Mapping[str, float] | None = None,
        corpus_files: Sequence[str | os.PathLike] | None = None,
        words: Sequence[int] = (2, 12),
        min_words: int = 2,
        kalapa_look: float = 0.5,
        held_out_fold: int | str | None = HELD_OUT_FOLD,
        **kwargs,
    ) -> None:
        super().__init__(name=name, size=size, held_out_fold=held_out_fold, **kwargs)
        path = Path(bank_path) if bank_path else default_bank_path(self.held_out_fold or 0)
        if not path.is_file():
            raise FileNotFoundError(
                f"{name}: no syllable bank at {path}; build it once with `python scripts/build_syllables.py`"
            )
        self.bank = SyllableBank.load(path)
        self.tokens = sorted(self.bank.by_text)
        self.text_weights = dict(text_weights or {"address": 0.5, "corpus": 0.5})
        self.generators = {}
        if self.text_weights.get("address"):
            self.generators["address"] = AddressGenerator()
        if self.text_weights.get("corpus"):
            files = (
                list(corpus_files) if corpus_files else default_corpus_files(held_out_fold=self.held_out_fold)
            )
            self.generators["corpus"] = CorpusLineGenerator.from_files(files, tuple(words))
        self.words = tuple(words)
        self.min_words = min_words
        self.kalapa_look = kalapa_look
        self.ink_style = RenderStyle()

    def _generate(self, index: int, rng: random.Random) -> str:
        kinds = [k for k in self.generators if self.text_weights.get(k)]
        for _ in range(_MAX_TRIES):
            if not kinds:
                break
            kind = rng.choices(kinds, [self.text_weights[k] for k in kinds])[0]
            text = normalize_text(self.generators[kind].generate(rng), self.tone_style)
            run = longest_run(text.split(" "), self.bank.by_text)
            if len(run) >= self.min_words:
                return " ".join(run[: self.words[1]])
        return " ".join(rng.choice(self.tokens) for _ in range(rng.randint(*self.words)))

    def get(self, index: int, rng: random.Random) -> Sample:
        text = self.text(index)
        writer = self.bank.writer_for(text.split(" "), rng)
        points, stroke_ends = compose(self.bank, text, writer, rng)
        if rng.random() < self.kalapa_look:
            image = self.renderer.render_ink(*ink_mask(points, stroke_ends, rng), rng)
        else:
            image = render_strokes(
                points, stroke_ends, rng.randint(*self.renderer.height), rng, self.ink_style
            )
        if self.augmenter is not None:
            image = self.augmenter(image, rng)
        return Sample(image=image, text=text, source=self.name, group=writer)
