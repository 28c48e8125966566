"""A word n-gram language model estimated from text and written as an ARPA file (for KenLM).

PyPI's `kenlm` only reads models (no `lmplz`), so the counting lives here: interpolated modified
Kneser-Ney as `lmplz` does it (Chen & Goodman 1998; Heafield et al. 2013). The highest order counts
n-grams; lower orders count the distinct words seen before them (n-grams that start a line keep their
raw counts: nothing can precede `<s>`). Every level gives its discounted mass to the one below, down to
a uniform distribution over the vocabulary plus `<unk>`.

Rare n-grams above the unigrams can be pruned (`prune_below`). Back-off weights are then computed so
that each context's distribution still sums to one over the kept n-grams (as SRILM does), which is also
exactly the interpolated model when nothing is pruned.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
Gram = tuple[str, ...]


def _discounts(counts: Iterable[int]) -> list[float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from the counts of counts (Chen & Goodman 1998)."""
    n = Counter(c for c in counts if c <= 4)
    if not n[1] or not n[2]:
        return [0.5, 1.0, 1.5]  # too little data for the estimate: the usual defaults
    y = n[1] / (n[1] + 2 * n[2])
    d1 = 1 - 2 * y * n[2] / n[1]
    d2 = 2 - 3 * y * n[3] / n[2]
    d3 = 3 - 4 * y * n[4] / n[3] if n[3] else 1.5
    # a floor keeps some mass for unseen words even when the estimate degenerates
    return [min(max(d, 0.1), cap) for d, cap in ((d1, 1.0), (d2, 2.0), (d3, 3.0))]


def _adjusted_counts(lines: Iterable[list[str]], order: int) -> list[Counter]:
    """Per order (index 0 = unigrams) the counts Kneser-Ney uses: raw at the top order and for n-grams
    that start with <s>, else the number of distinct words before the n-gram."""
    raw: list[Counter] = [Counter() for _ in range(order)]
    for words in lines:
        tokens = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                gram = tuple(tokens[i : i + n])
                if gram != (BOS,):
                    raw[n - 1][gram] += 1
    counts = [Counter() for _ in range(order)]
    counts[-1] = raw[-1]
    for n in range(order - 1, 0, -1):  # continuation counts from the order above
        for gram in raw[n]:
            counts[n - 1][gram[1:]] += 1
        for gram, c in raw[n - 1].items():
            if gram[0] == BOS:
                counts[n - 1][gram] = c
    return counts


class WordNgramLM:
    """Interpolated modified Kneser-Ney word n-grams; `train` estimates, `write_arpa` stores."""

    def __init__(self, order: int, probs: list[dict[Gram, float]], backoffs: dict[Gram, float]) -> None:
        self.order = order
        self.probs = probs  # per order: n-gram -> probability of its last word given the rest
        self.backoffs = backoffs  # context -> back-off weight (1 where absent)

    @classmethod
    def train(cls, lines: Iterable[str], order: int = 3, prune_below: int = 1) -> WordNgramLM:
        """`lines`: text lines (split on whitespace). `prune_below`: n-grams of order 2 and up counted
        fewer times (raw) are dropped, their mass backed off."""
        tokenised = [line.split() for line in lines]
        counts = _adjusted_counts(tokenised, order)
        vocab = sorted({g[0] for g in counts[0]} | {UNK})
        interpolated: list[dict[Gram, float]] = []
        for n, level in enumerate(counts):
            d = _discounts(level.values())
            totals: dict[Gram, int] = defaultdict(int)
            mass: dict[Gram, float] = defaultdict(float)
            for gram, c in level.items():
                totals[gram[:-1]] += c
                mass[gram[:-1]] += d[min(c, 3) - 1]
            probs: dict[Gram, float] = {}
            for gram, c in level.items():
                context = gram[:-1]
                lower = interpolated[n - 1].get(gram[1:]) if n else 1.0 / len(vocab)
                if lower is None:  # an unseen lower n-gram cannot happen: every suffix was counted
                    raise AssertionError(f"missing lower-order n-gram {gram[1:]}")
                gamma = mass[context] / totals[context]
                probs[gram] = max(c - d[min(c, 3) - 1], 0) / totals[context] + gamma * lower
            if n == 0:
                probs[(UNK,)] = mass[()] / totals[()] / len(vocab)
            interpolated.append(probs)
        if prune_below > 1:
            interpolated = cls._pruned(interpolated, counts, prune_below)
        return cls(order, interpolated, cls._backoffs(interpolated))

    @staticmethod
    def _pruned(probs: list[dict[Gram, float]], counts: list[Counter], below: int) -> list[dict[Gram, float]]:
        kept = [probs[0]] + [
            {g: p for g, p in probs[n].items() if counts[n][g] >= below} for n in range(1, len(probs))
        ]
        # ARPA lists the context and the suffix of every n-gram it lists
        for n in range(len(probs) - 1, 0, -1):
            for gram in list(kept[n]):
                for part in (gram[:-1], gram[1:]):
                    if part not in kept[n - 1] and part != (BOS,):
                        kept[n - 1][part] = probs[n - 1][part]
        return kept

    @staticmethod
    def _backoffs(probs: list[dict[Gram, float]]) -> dict[Gram, float]:
        """bow(h) = (1 - sum of kept p(w|h)) / (1 - sum of those words' p(w|h minus its first word))."""
        kept_mass: dict[Gram, float] = defaultdict(float)
        lower_mass: dict[Gram, float] = defaultdict(float)
        for n in range(1, len(probs)):
            for gram, p in probs[n].items():
                kept_mass[gram[:-1]] += p
                lower_mass[gram[:-1]] += probs[n - 1][gram[1:]]
        return {h: max(1e-12, 1 - kept_mass[h]) / max(1e-12, 1 - lower_mass[h]) for h in kept_mass}

    def log10_prob(self, words: list[str], word: str) -> float:
        """log10 p(word | words) as KenLM computes it from the ARPA file (used by tests)."""
        context = tuple(words[-(self.order - 1) :]) if self.order > 1 else ()
        weight = 0.0
        while True:
            gram = (*context, word)
            p = self.probs[len(gram) - 1].get(gram)
            if p is not None:
                return weight + math.log10(p)
            if not context:
                return weight + math.log10(self.probs[0][(UNK,)])
            weight += math.log10(self.backoffs.get(context, 1.0))
            context = context[1:]

    def write_arpa(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            unigrams = {**self.probs[0], (BOS,): None}
            sizes = [len(unigrams)] + [len(level) for level in self.probs[1:]]
            for n, size in enumerate(sizes, start=1):
                f.write(f"ngram {n}={size}\n")
            for n in range(1, self.order + 1):
                f.write(f"\n\\{n}-grams:\n")
                level = unigrams if n == 1 else self.probs[n - 1]
                for gram in sorted(level):
                    p = level[gram]
                    logp = -99.0 if p is None else math.log10(p)
                    line = f"{logp:.6f}\t{' '.join(gram)}"
                    if n < self.order and gram in self.backoffs:
                        line += f"\t{math.log10(self.backoffs[gram]):.6f}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")
