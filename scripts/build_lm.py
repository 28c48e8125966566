"""Build the language models of the `address` and `prose` decoding domains (`make lm`).

    python scripts/build_lm.py                  # both, into src/vihtr/assets/lm/ (+ .unigrams)
    python scripts/build_lm.py address --lines 200000 --order 4 -o /tmp/address.arpa.gz
    python scripts/build_lm.py prose --held-out-folds 0 1 -o /tmp/prose.arpa.gz   # for tuning on fold 1

Prose: syllable trigrams over the text of `vihtr.data.lm_text` (LibreOffice's Vietnamese help, the VNOnDB
training writers' texts less every text a held-out writer copied, the pyvi word list), words keyed by
`vihtr.text.lexicon.lm_key`. No line shares five consecutive words with a held-out line (fold 0 by
default). Prints the perplexity per word on the held-out VNOnDB lines.

Address:
Text: `--lines` addresses from the seeded synthetic grammar (`vihtr.data.synthetic.address`: house
numbers, streets, hamlets and every unit of the `vietnamadminunits` database with the abbreviations forms
use), plus each ward written once in full (`ward district province`, and `ward province` after the 2025
reform) so that no unit is missing from the vocabulary. Never real labels: the held-out folds score the
result. Old tone style, as the models read. Word n-grams with interpolated modified Kneser-Ney
(`vihtr.text.arpa`), rare n-grams pruned, written as gzip'd ARPA that KenLM reads; the vocabulary goes to
`<output>.unigrams` for pyctcdecode.

Prints the per-word perplexity on a second, differently seeded synthetic sample (real labels are
never read).
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from vihtr.data.synthetic.address import AddressGenerator
from vihtr.inference.ctc_lm import unigrams_path
from vihtr.inference.domains import ADDRESS_LM, PROSE_LM
from vihtr.text.admin_units import load_units
from vihtr.text.arpa import WordNgramLM
from vihtr.text.normalize import normalize_text


def synthetic_addresses(n: int, seed: int) -> list[str]:
    generator = AddressGenerator()
    rng = random.Random(seed)
    return [normalize_text(generator.generate(rng), "old") for _ in range(n)]


def unit_lines() -> list[str]:
    """Every ward once with its district and province (legacy) or its province (after 2025)."""
    lines = []
    for post_2025 in (False, True):
        for u in load_units(post_2025):
            parts = [u.ward, u.district, u.province] if u.district else [u.ward, u.province]
            lines.append(normalize_text(" ".join(parts), "old"))
    return lines


def build(lines: list[str], order: int, prune_below: int, output: Path) -> WordNgramLM:
    """Write the ARPA (gzip'd) and its vocabulary (`<output>.unigrams`)."""
    lm = WordNgramLM.train(lines, order=order, prune_below=prune_below)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        arpa = Path(tmp) / "lm.arpa"
        lm.write_arpa(arpa)
        with arpa.open("rb") as src, gzip.GzipFile(output, "wb", mtime=0) as dst:  # mtime 0: reproducible
            shutil.copyfileobj(src, dst)
    vocabulary = sorted({w for line in lines for w in line.split()})
    unigrams_path(output).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    return lm


def perplexity(lm: WordNgramLM, lines: list[str]) -> float:
    total, words = 0.0, 0
    for line in lines:
        tokens = line.split() + ["</s>"]
        history = ["<s>"]
        for token in tokens:
            total += lm.log10_prob(history, token)
            history.append(token)
        words += len(tokens)
    return 10 ** (-total / max(1, words))


def build_address(args: argparse.Namespace) -> None:
    output = args.output or ADDRESS_LM
    start = time.perf_counter()
    lines = synthetic_addresses(args.lines, args.seed) + unit_lines()
    print(
        f"{len(lines)} lines ({args.lines} synthetic addresses + units) in {time.perf_counter() - start:.0f} s"
    )
    start = time.perf_counter()
    lm = build(lines, args.order, args.prune_below or 2, output)
    report(lm, output, start)
    check = synthetic_addresses(2_000, args.seed + 1)
    print(f"per-word perplexity on 2,000 other synthetic addresses: {perplexity(lm, check):.1f} "
          f"(uniform over the vocabulary: {len(lm.probs[0])})")  # fmt: skip


def build_prose(args: argparse.Namespace) -> None:
    from vihtr.data.lm_text import prose_lm_lines, vnondb_prose
    from vihtr.text.lexicon import lm_line

    output = args.output or PROSE_LM
    start = time.perf_counter()
    vnondb = vnondb_prose(args.held_out_folds)
    sources = prose_lm_lines(args.held_out_folds, args.libreoffice_help, vnondb)
    lines = [line for source in sources.values() for line in source]
    words = sum(len(line.split()) for line in lines)
    print(", ".join(f"{name}: {len(s)} lines" for name, s in sources.items()), f"({words} words)",
          f"in {time.perf_counter() - start:.0f} s")  # fmt: skip
    start = time.perf_counter()
    lm = build(lines, args.order, args.prune_below or 1, output)
    report(lm, output, start)
    held_out = [lm_line(normalize_text(t, "old")) for t in vnondb[1]]
    print(f"per-word perplexity on the {len(held_out)} held-out VNOnDB lines (folds {args.held_out_folds}): "
          f"{perplexity(lm, [h for h in held_out if h]):.1f}")  # fmt: skip


def report(lm: WordNgramLM, output: Path, start: float) -> None:
    sizes = ", ".join(f"{len(level)} {n}-grams" for n, level in enumerate(lm.probs, start=1))
    mb = output.stat().st_size / 1e6
    print(f"{sizes} in {time.perf_counter() - start:.0f} s -> {output} ({mb:.2f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("domain", nargs="?", choices=["address", "prose", "all"], default="all")
    parser.add_argument("--lines", type=int, default=100_000, help="address: synthetic address lines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", type=int, default=3, help="longest n-gram, in words")
    parser.add_argument("--prune-below", type=int, default=None,
                        help="drop bigrams and up seen fewer times (default: address 2; prose 1, which read "
                        "fold 1 at 16.75 %% CER against 16.99 %% with 2, at 2.3 MB against 0.7 MB)")  # fmt: skip
    parser.add_argument("--held-out-folds", type=int, nargs="+", default=[0],
                        help="prose: writer folds whose texts the LM must not hold")  # fmt: skip
    parser.add_argument("--libreoffice-help", type=Path, default=None,
                        help="prose: the unpacked libreoffice-help-vi package (default: apt-get download)")  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, default=None, help="one domain's ARPA (.arpa.gz)")
    args = parser.parse_args(argv)
    if args.output and args.domain == "all":
        parser.error("--output names one LM: choose the domain (address or prose)")
    if args.domain in ("address", "all"):
        build_address(args)
    if args.domain in ("prose", "all"):
        build_prose(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
