"""Text for synthetic lines beyond addresses: windows of corpus lines, and random word sequences.

Default corpora are the Kalapa label texts (re-rendering real addresses in new hands) and the VNOnDB
transcriptions (newspaper and essay prose, `<Tg_Truth>` of the InkML inside the tar.xz, extracted once
into a cache folder), of the writers outside the held-out fold (fold 0, on which every reported score is
measured): synthetic lines never show the text a score is measured on. Words come from the pyvi word list
vendored in `vihtr/assets/words/` (MIT).
Every text is NFC-normalised and only lines inside the charset are kept.
"""

from __future__ import annotations

import logging
import os
import random
from functools import lru_cache
from pathlib import Path

from vihtr.paths import ASSETS_DIR, cache_dir, kalapa_root, vnondb_archive
from vihtr.paths import data_root as data_root_default
from vihtr.text.charset import VIETNAMESE_CHARSET
from vihtr.text.normalize import normalize_text

log = logging.getLogger(__name__)

WORDS_FILE = ASSETS_DIR / "words" / "pyvi_words.txt"
DEFAULT_CACHE_DIR = cache_dir()
_CHARSET = frozenset(VIETNAMESE_CHARSET)


def in_charset(text: str) -> bool:
    return all(c in _CHARSET for c in text)


def read_corpus(path: str | os.PathLike) -> list[str]:
    """Text lines of a corpus file: a `labels.tsv` (text after the tab) or plain text (one line each)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".tsv":
        lines = [line.partition("\t")[2] for line in lines]
    texts = [normalize_text(line) for line in lines]
    kept = [t for t in texts if t and in_charset(t)]
    if len(kept) < len([t for t in texts if t]):
        log.info(
            "%s: %d line(s) outside the charset left out", path, len([t for t in texts if t]) - len(kept)
        )
    return kept


def vnondb_transcriptions(
    archive: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
) -> Path:
    """A text file of every VNOnDB line transcription, written once into `cache_dir` from the InkML archive."""
    from vihtr.data.sources.inkml import inkml_files, parse_inkml

    archive = Path(archive or vnondb_archive())
    cache_dir = Path(cache_dir or DEFAULT_CACHE_DIR)
    target = cache_dir / "corpus" / "vnondb_transcriptions.txt"
    if target.is_file() and target.stat().st_mtime >= archive.stat().st_mtime:
        return target
    texts = [line.text for f in inkml_files(archive, cache_dir / "vnondb") for line in parse_inkml(f)]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text("\n".join(normalize_text(t) for t in texts) + "\n", encoding="utf-8")
    tmp.replace(target)  # atomic: a concurrent reader never sees half a file
    return target


HELD_OUT_FOLD = 0  # the writer fold every reported score holds out


def _training_text(source, held_out_fold: int) -> Path:
    """A real source's training side (`fold`/`split="train"` already chosen) written as a labels file."""
    from vihtr.data.sources.real import write_labels

    target = DEFAULT_CACHE_DIR / "corpus" / f"{source.name}_without_fold{held_out_fold}.tsv"
    return Path(write_labels(source, target))


def kalapa_labels(
    data_root: str | os.PathLike | None = None, held_out_fold: int | None = HELD_OUT_FOLD
) -> Path | None:
    """The Kalapa labels (`labels.tsv`), without the lines of writers in `held_out_fold` (None: all)."""
    labels = kalapa_root(data_root) / "labels.tsv"
    if not labels.is_file():
        return None
    if held_out_fold is None:
        return labels
    from vihtr.data.sources.real import LineFolderSource

    return _training_text(LineFolderSource(labels.parent, fold=held_out_fold, split="train"), held_out_fold)


def default_corpus_files(
    data_root: str | os.PathLike | None = None, held_out_fold: int | None = HELD_OUT_FOLD
) -> list[Path]:
    """The Kalapa labels and the VNOnDB transcriptions that exist under `data_root`, without the text of
    the writers in `held_out_fold` (None: every line)."""
    files = []
    labels = kalapa_labels(data_root, held_out_fold)
    if labels:
        files.append(labels)
    archive = vnondb_archive(data_root)
    if archive.is_file() and held_out_fold is None:
        files.append(vnondb_transcriptions(archive))
    elif archive.is_file():
        from vihtr.data.sources.inkml import InkMLSource

        cache = DEFAULT_CACHE_DIR / "vnondb"
        source = InkMLSource(archive, cache_dir=cache, fold=held_out_fold, split="train")
        files.append(_training_text(source, held_out_fold))
    if not files:
        raise FileNotFoundError(
            f"no default corpus under {data_root or data_root_default()} (set VIHTR_DATA_ROOT or pass corpus_files)"
        )
    return files


class CorpusLineGenerator:
    """A window of consecutive words (random length) cut from a random corpus line."""

    def __init__(self, lines: list[str], words: tuple[int, int] = (2, 12)) -> None:
        if not lines:
            raise ValueError("empty corpus")
        self.lines = lines
        self.words = words

    @classmethod
    def from_files(
        cls, files: list[str | os.PathLike], words: tuple[int, int] = (2, 12)
    ) -> CorpusLineGenerator:
        return cls([t for f in files for t in read_corpus(f)], words)

    def generate(self, rng: random.Random) -> str:
        tokens = rng.choice(self.lines).split(" ")
        n = min(len(tokens), rng.randint(*self.words))
        start = rng.randint(0, len(tokens) - n)
        return " ".join(tokens[start : start + n])


@lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """The vendored Vietnamese words (compounds included), NFC, only those fully inside the charset."""
    words = {normalize_text(w) for w in WORDS_FILE.read_text(encoding="utf-8").splitlines()}
    return tuple(sorted(w for w in words if w and in_charset(w)))


class WordSequenceGenerator:
    """Random word sequences (no grammar): every syllable shape the recogniser may meet, any order.

    Words are lower case as listed; a share is capitalised as in names and sentence starts.
    """

    def __init__(self, words: tuple[int, int] = (2, 8), capitalize_prob: float = 0.3) -> None:
        self.vocabulary = word_list()
        self.words = words
        self.capitalize_prob = capitalize_prob

    def generate(self, rng: random.Random) -> str:
        picked = [rng.choice(self.vocabulary) for _ in range(rng.randint(*self.words))]
        text = " ".join(w[:1].upper() + w[1:] if rng.random() < self.capitalize_prob else w for w in picked)
        return text
