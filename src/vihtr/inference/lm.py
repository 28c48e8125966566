"""A character n-gram language model for shallow fusion in beam search (an address LM for Kalapa).

Interpolated modified Kneser-Ney (Chen & Goodman): the highest order counts n-grams, lower orders count
the distinct characters seen before them, and every level gives away discounted mass to the one below,
down to a uniform distribution over the charset's characters plus the end of line. A character the LM
was not built for (another charset's) gets `UNKNOWN_LOG_PROB`.

The model is read on the recogniser's token ids (`vihtr.text.charset.Charset`): characters from id 4 on,
EOS = 2 for the end of line. A state is the last `order - 1` characters (a plain string), so beams copy
and reorder it for free:

    lm = CharNgramLM.load("models/lm/address_fold0.json.gz").with_charset(model.charset)
    state = lm.initial_state()
    lp = lm.log_prob_next(state, char_id)
    state = lm.advance(state, char_id)

Saved as gzip'd JSON count tables (no pickle: users load these files from disk); probabilities are
computed at load. Rare long n-grams are pruned when training (`prune_below`), their mass kept as
back-off mass so every distribution still sums to one.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence

from vihtr.text.charset import EOS, SPECIAL_TOKENS, Charset

BOS = "\x02"  # start of line: only ever context
END = "\x03"  # end of line: only ever predicted (the recogniser's EOS)
UNSEEN = "\x00"  # stands for a character outside the LM in a state: no context holds it
UNKNOWN_LOG_PROB = math.log(1e-6)
DEFAULT_LM_WEIGHT = 0.3  # a starting point: tune it on held-out lines (scripts/release.py score --lm-weight)
FORMAT = "vihtr-char-ngram"
VERSION = 1


def _discounts(counts: Iterable[int]) -> list[float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from the counts of counts (Chen & Goodman 1998)."""
    n = Counter(c for c in counts if c <= 4)
    if not n[1] or not n[2]:
        return [0.5, 1.0, 1.5]  # too little data for the estimate: the usual defaults
    y = n[1] / (n[1] + 2 * n[2])
    d1 = 1 - 2 * y * n[2] / n[1]
    d2 = 2 - 3 * y * n[3] / n[2]
    d3 = 3 - 4 * y * n[4] / n[3] if n[3] else 1.5
    # a floor keeps some mass for unseen characters even when the estimate degenerates
    return [min(max(d, 0.1), cap) for d, cap in ((d1, 1.0), (d2, 2.0), (d3, 3.0))]


class CharNgramLM:
    """Character n-gram LM; build with `train`, store with `save` / `load`, bind ids with `with_charset`."""

    def __init__(
        self,
        order: int,
        chars: str,
        discounts: list[list[float]],
        levels: list[dict[str, list]],
        charset: Charset | None = None,
    ) -> None:
        """`levels[n]` maps an n-character context to `[total, next chars, their counts]`; `total` also
        holds the pruned counts. `discounts[n]` are that level's D1, D2, D3+."""
        self.order = order
        self.chars = chars
        self.discounts = discounts
        self._known = set(chars)
        self._uniform = 1.0 / (len(chars) + 1)
        # per context one tuple (next chars, counts, total, back-off weight): a dict per context would
        # take twice the memory, and probabilities are cheap to recompute from the counts
        self._tables = [self._table(level, d) for level, d in zip(levels, discounts)]
        self.bind(charset or Charset(chars))

    @staticmethod
    def _table(
        level: dict[str, list], discounts: list[float]
    ) -> dict[str, tuple[str, tuple[int, ...], int, float]]:
        table = {}
        for context, (total, nexts, counts) in level.items():
            kept = sum(c - discounts[min(c, 3) - 1] for c in counts) / total
            table[context] = (nexts, tuple(counts), total, max(0.0, 1.0 - kept))
        return table

    @property
    def levels(self) -> list[dict[str, list]]:
        """The count tables as stored: context -> [total, next chars, counts], one dict per context length."""
        return [
            {ctx: [t, nexts, list(counts)] for ctx, (nexts, counts, t, _) in table.items()}
            for table in self._tables
        ]

    # --- ids ---------------------------------------------------------------------------------------

    def bind(self, charset: Charset) -> None:
        """Read token ids of `charset` (characters the LM does not know get `UNKNOWN_LOG_PROB`)."""
        offset = len(SPECIAL_TOKENS)
        self.charset = charset
        self._id_char: list[str | None] = [None] * len(charset)
        self._id_char[EOS] = END
        for i, ch in enumerate(charset.chars):
            self._id_char[offset + i] = ch if ch in self._known else None

    def with_charset(self, charset: Charset) -> CharNgramLM:
        """This LM reading another charset's ids (the count tables are shared, not copied)."""
        if charset.chars == self.charset.chars:
            return self
        clone = object.__new__(CharNgramLM)
        clone.__dict__.update(self.__dict__)
        clone.bind(charset)
        return clone

    # --- scoring -----------------------------------------------------------------------------------

    def initial_state(self) -> str:
        return BOS

    def advance(self, state: str, char_id: int) -> str:
        ch = self._id_char[char_id] if 0 <= char_id < len(self._id_char) else None
        return self._push(state, ch or UNSEEN)

    def _push(self, state: str, ch: str) -> str:
        keep = self.order - 1
        return (state + ch)[-keep:] if keep else ""

    def prob(self, state: str, ch: str) -> float:
        """P(ch | state) for a character (or `END`), interpolating from the uniform up to the longest context."""
        p = self._uniform
        for n in range(min(len(state), self.order - 1) + 1):
            entry = self._tables[n].get(state[len(state) - n :])
            if entry is not None:
                nexts, counts, total, backoff = entry
                i = nexts.find(ch)
                p = backoff * p
                if i >= 0:
                    c = counts[i]
                    p += (c - self.discounts[n][min(c, 3) - 1]) / total
        return p

    def log_prob_next(self, state: str, char_id: int) -> float:
        ch = self._id_char[char_id] if 0 <= char_id < len(self._id_char) else None
        return UNKNOWN_LOG_PROB if ch is None else math.log(self.prob(state, ch))

    def log_probs(self, state: str) -> list[float]:
        """Log-probability of every token id (-inf for pad, start and mask)."""
        return [
            float("-inf") if ch is None and i < len(SPECIAL_TOKENS) else self.log_prob_next(state, i)
            for i, ch in enumerate(self._id_char)
        ]

    def log_prob_text(self, text: str) -> float:
        """Natural-log probability of a whole line, its end included (characters outside: the floor)."""
        state, total = BOS, 0.0
        for ch in text:
            if ch in self._known:
                total += math.log(self.prob(state, ch))
                state = self._push(state, ch)
            else:
                total += UNKNOWN_LOG_PROB
                state = self._push(state, UNSEEN)
        return total + math.log(self.prob(state, END))

    def perplexity(self, lines: Sequence[str]) -> float:
        """Per-character perplexity over `lines`, each line's end counted as one character."""
        total = sum(self.log_prob_text(line) for line in lines)
        n = sum(len(line) + 1 for line in lines)
        return math.exp(-total / max(1, n))

    # --- training and storage ----------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        lines: Iterable[str],
        order: int = 7,
        charset: Charset | None = None,
        prune_below: int = 2,
        prune_from: int = 5,
    ) -> CharNgramLM:
        """Count `lines` (those with characters outside `charset` are skipped). N-grams of `prune_from`
        characters or more seen fewer than `prune_below` times are dropped (their mass backs off)."""
        if order < 1:
            raise ValueError(f"order must be at least 1, got {order}")
        charset = charset or Charset()
        seqs = [BOS + line + END for line in lines if line in charset]
        # raw[n]: n-grams of n characters; the last is predicted, BOS is never predicted
        raw: list[Counter] = [Counter() for _ in range(order + 1)]
        for n in range(1, order + 1):
            first = 1 if n == 1 else 0
            raw[n] = Counter(s[i : i + n] for s in seqs for i in range(first, len(s) - n + 1))
        levels: list[dict[str, list]] = []
        discounts: list[list[float]] = []
        for n in range(1, order + 1):
            if n == order:
                counts = raw[n]
            else:  # Kneser-Ney: how many characters came before, except at the line start (nothing can)
                before = Counter(g[1:] for g in raw[n + 1])
                counts = {g: c if g[0] == BOS else before[g] for g, c in raw[n].items()}
            discounts.append(_discounts(counts.values()))
            level: dict[str, list] = {}
            for gram, c in counts.items():
                entry = level.setdefault(gram[:-1], [0, [], []])
                entry[0] += c
                if n < prune_from or c >= prune_below:
                    entry[1].append(gram[-1])
                    entry[2].append(c)
            levels.append({ctx: [t, "".join(ns), cs] for ctx, (t, ns, cs) in level.items() if ns})
        return cls(order, charset.chars, discounts, levels, charset)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "order": self.order,
            "chars": self.chars,
            "discounts": self.discounts,
            "levels": self.levels,
        }

    def save(self, path: str | os.PathLike) -> None:
        data = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with gzip.open(path, "wb", compresslevel=9) as f:
            f.write(data)

    @classmethod
    def load(cls, path: str | os.PathLike, charset: Charset | None = None) -> CharNgramLM:
        with gzip.open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"{path} is not a {FORMAT} v{VERSION} file")
        lm = cls(data["order"], data["chars"], data["discounts"], data["levels"])
        return lm.with_charset(charset) if charset is not None else lm
