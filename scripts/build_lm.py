"""Build the address language model of the `address` decoding domain (`make lm`), from public data only.

    python scripts/build_lm.py                  # -> src/vihtr/assets/lm/address.arpa.gz (+ .unigrams)
    python scripts/build_lm.py --lines 200000 --order 4 -o /tmp/address.arpa.gz

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

from vihtr.data.synthetic.address import AddressGenerator, load_units
from vihtr.inference.ctc_lm import unigrams_path
from vihtr.inference.domains import ADDRESS_LM
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=100_000, help="synthetic address lines")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", type=int, default=3, help="longest n-gram, in words")
    parser.add_argument("--prune-below", type=int, default=2, help="drop bigrams and up seen fewer times")
    parser.add_argument("-o", "--output", type=Path, default=ADDRESS_LM)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    lines = synthetic_addresses(args.lines, args.seed) + unit_lines()
    print(
        f"{len(lines)} lines ({args.lines} synthetic addresses + units) in {time.perf_counter() - start:.0f} s"
    )
    start = time.perf_counter()
    lm = build(lines, args.order, args.prune_below, args.output)
    sizes = ", ".join(f"{len(level)} {n}-grams" for n, level in enumerate(lm.probs, start=1))
    mb = args.output.stat().st_size / 1e6
    print(f"{sizes} in {time.perf_counter() - start:.0f} s -> {args.output} ({mb:.2f} MB)")
    check = synthetic_addresses(2_000, args.seed + 1)
    print(f"per-word perplexity on 2,000 other synthetic addresses: {perplexity(lm, check):.1f} "
          f"(uniform over the vocabulary: {len(lm.probs[0])})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
