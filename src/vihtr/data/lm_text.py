"""The prose language model's training text: public Vietnamese text plus the training folds' prose, never a
held-out text.

Sources (each line NFC, old tone style as the models read, then keyed by `vihtr.text.lexicon.lm_line`):
- **LibreOffice's Vietnamese help** (Debian package `libreoffice-help-vi`, MPL-2.0): about 16,000
  distinct Vietnamese sentences and titles, the largest body of running Vietnamese text a registry ships.
  Its paragraphs are kept when at least 40 % of their words carry a Vietnamese letter.
- **VNOnDB transcriptions of the training writers**, without every text a held-out writer copied:
  several writers copied the same newspaper text (`copied_texts`), so a writer split alone would put
  the held-out lines' sentences in the LM.
- **The vendored pyvi word list** (MIT): each word once, so every listed syllable and compound is known.

Then any line that shares `SHARED_WORDS` consecutive words with a held-out line is dropped, whatever its
source: the LM never holds a held-out sentence, even one quoted in another text.
"""

from __future__ import annotations

import html
import logging
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from vihtr.paths import cache_dir, vnondb_archive
from vihtr.text.lexicon import lm_line
from vihtr.text.normalize import normalize_text

log = logging.getLogger(__name__)

LIBREOFFICE_HELP = "libreoffice-help-vi"
SHARED_WORDS = 5  # a line sharing this many consecutive LM words with a held-out line is left out
VIETNAMESE_LETTERS = frozenset("ăâđêôơưàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ")
MIN_VIETNAMESE_SHARE = 0.4
MIN_WORDS = 4


def vietnamese_share(text: str) -> float:
    words = text.split()
    return sum(any(c in VIETNAMESE_LETTERS for c in w.lower()) for w in words) / max(1, len(words))


def vietnamese_paragraphs(text: str) -> Iterable[str]:
    """The paragraphs of a plain text that are Vietnamese prose (not code, not untranslated English)."""
    for paragraph in re.split(r"[\r\n]+", text):
        paragraph = " ".join(paragraph.split())
        if len(paragraph.split()) >= MIN_WORDS and vietnamese_share(paragraph) >= MIN_VIETNAMESE_SHARE:
            yield unicodedata.normalize("NFC", paragraph)


def html_text(page: str) -> str:
    """An HTML page's visible text, one line per element."""
    page = re.sub(r"(?s)<(script|style)[^>]*>.*?</\1>", " ", page)
    return html.unescape(re.sub(r"<[^>]+>", "\n", page))


def debian_package(package: str, target: Path) -> Path:
    """A Debian package's files, downloaded (`apt-get download`) and unpacked once into `target`."""
    done = target / ".unpacked"
    if done.is_file():
        return target
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise FileNotFoundError(
            f"the prose LM reads the Debian package {package}: on a machine without apt, unpack its .deb "
            "and pass the folder (scripts/build_lm.py --libreoffice-help DIR)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True)
        deb = next(Path(tmp).glob("*.deb"))
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    done.write_text(deb.name + "\n")
    return target


def libreoffice_help_lines(folder: str | os.PathLike | None = None) -> list[str]:
    """The distinct Vietnamese paragraphs of LibreOffice's help pages, in a stable order. `folder`: the
    unpacked package (default: downloaded once into the cache)."""
    folder = (
        Path(folder) if folder else debian_package(LIBREOFFICE_HELP, cache_dir("corpus", LIBREOFFICE_HELP))
    )
    pages = sorted(folder.rglob("*.html"))
    if not pages:
        raise FileNotFoundError(f"no help pages (*.html) under {folder}")
    lines: dict[str, None] = {}
    for page in pages:
        for paragraph in vietnamese_paragraphs(html_text(page.read_text(encoding="utf-8", errors="ignore"))):
            lines.setdefault(paragraph)
    return list(lines)


def vnondb_prose(
    held_out_folds: Iterable[int], archive: str | os.PathLike | None = None
) -> tuple[list[str], list[str]]:
    """(training lines, held-out lines) of VNOnDB: a line is held out when its writer is in one of
    `held_out_folds` (the folds training holds out); it is training text when its writer is not and no
    held-out writer copied its text."""
    from vihtr.data.sources.inkml import InkMLSource, copied_texts

    archive = Path(archive or vnondb_archive())
    cache = cache_dir("vnondb")
    held_keys = set()
    for fold in held_out_folds:
        held_keys.update(InkMLSource(archive, cache_dir=cache, fold=fold, split="val").keys)
    text_of = copied_texts(archive, cache)
    listing = InkMLSource(archive, cache_dir=cache, fold=None).listing
    held_texts = {text_of[key.partition("#")[0]] for key, _, _ in listing if key in held_keys}
    held_out = [text for key, text, _ in listing if key in held_keys]
    training = [
        text
        for key, text, _ in listing
        if key not in held_keys and text_of[key.partition("#")[0]] not in held_texts
    ]
    return training, held_out


def word_grams(line: str, n: int = SHARED_WORDS) -> set[tuple[str, ...]]:
    words = line.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def prose_lm_lines(
    held_out_folds: Iterable[int] = (0,),
    libreoffice_help: str | os.PathLike | None = None,
    vnondb: tuple[list[str], list[str]] | None = None,
) -> dict[str, list[str]]:
    """Source name -> its lines as LM text (keys), none sharing `SHARED_WORDS` consecutive words with a
    held-out line. `vnondb`: what `vnondb_prose(held_out_folds)` returns, when the caller has it already."""
    from vihtr.data.synthetic.corpus import word_list

    training, held_out = vnondb or vnondb_prose(held_out_folds)
    held = set().union(*(word_grams(lm_line(normalize_text(t, "old"))) for t in held_out))
    raw = {
        LIBREOFFICE_HELP: libreoffice_help_lines(libreoffice_help),
        "vnondb-training-texts": training,
        "pyvi-words": list(word_list()),
    }
    out = {}
    for name, lines in raw.items():
        keyed = [k for k in (lm_line(normalize_text(t, "old")) for t in lines) if k]
        out[name] = [line for line in keyed if not word_grams(line) & held]
        dropped = len(keyed) - len(out[name])
        log.info(
            "%s: %d lines (%d left out for sharing a held-out line's words)", name, len(out[name]), dropped
        )
    return out
