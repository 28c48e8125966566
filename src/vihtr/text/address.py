"""Hierarchy-aware correction of the end of a Vietnamese address line (ward, district, province).

A recognised address ends with administrative units, most specific first: `[ward] [district] province`
(before the 2025 reform) or `[ward] province` (after it), each name optionally after its type word
(`P`, `Phường`, `Q`, `Tp`, `Thị Xã`, ...). Reading errors there are ones a list of units fixes:
"An Bình Cao Lãnh Đồng Trn" -> "An Bình Cao Lãnh Đồng Tháp".

`AddressCorrector.correct(line)` searches, from the end of the line backwards, the chain of units that
best explains the last words: the province (or, when a writer left it off, a district), then one of
*that* province's districts or wards, then one of *that* district's wards. Each name is matched by
edit distance (`rapidfuzz`) against a span of 1-4 words. A chain replaces the words it covers only when
it is confident and consistent:
- every matched name is within `max_relative_distance` of its span (short names must match exactly);
- a chain that changes anything has at least two levels that belong together (a lone fuzzy match could
  turn the end of any sentence into a place);
- digits never change (a span and its name carry the same digits), so house and ward numbers stay.
Everything before the chain (house number, street, hamlet) is left as read. Names are written in the
old tone style of the training labels (`Hoà`, `Thuỷ`), or the new one when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from vihtr.text.admin_units import load_units
from vihtr.text.normalize import normalize_text

MAX_SPAN_WORDS = 4
# well-known other spellings of a province; matched like its name and written as matched
PROVINCE_ALIASES = {
    "Hồ Chí Minh": ("Hcm", "Sài Gòn"),
    "Huế": ("Thừa Thiên Huế",),
    "Bà Rịa - Vũng Tàu": ("Bà Rịa Vũng Tàu", "Brvt"),
}
# type words written before a name, per level, as forms write them (compared case-insensitively)
PREFIXES = {
    "province": ("Tp", "Thành Phố", "T", "Tỉnh"),
    "district": ("Q", "Quận", "H", "Huyện", "Tp", "Thành Phố", "Tx", "Thị Xã"),
    "ward": ("P", "Phường", "X", "Xã", "Tt", "Thị Trấn", "Đặc Khu"),
}


def _key(text: str) -> str:
    return text.casefold()


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@dataclass
class _Node:
    """A unit's written names (its name and aliases) and the units one level below it."""

    names: tuple[str, ...]
    children: dict[str, _Node] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """One unit matched to words[start:end]: `name` replaces them when `distance` > 0."""

    level: str
    name: str
    start: int
    end: int
    distance: int


class AdminTree:
    """Provinces -> districts -> wards (legacy units) and provinces -> wards (units after 2025)."""

    def __init__(self, tone_style: str = "old") -> None:
        def name(text: str) -> str:
            return normalize_text(text, tone_style)

        # keyed (level, name) as every level's children are, so the search walks them all alike
        self.provinces: dict[tuple[str, str], _Node] = {}
        for post_2025 in (False, True):
            for unit in load_units(post_2025):
                province = name(unit.province)
                node = self.provinces.setdefault(
                    ("province", province),
                    _Node((province, *(name(a) for a in PROVINCE_ALIASES.get(unit.province, ())))),
                )
                parent = node
                if unit.district:
                    district = name(unit.district)
                    parent = node.children.setdefault(("district", district), _Node((district,)))
                ward = name(unit.ward)
                parent.children.setdefault(("ward", ward), _Node((ward,)))
        # a district written without its province (`Thành Phố Vũng Tàu`): every district is a possible end
        self.districts: dict[tuple[str, str], _Node] = {
            ("district", d): n
            for p in self.provinces.values()
            for (level, d), n in p.children.items()
            if level == "district"
        }


@lru_cache(maxsize=2)
def admin_tree(tone_style: str = "old") -> AdminTree:
    return AdminTree(tone_style)


class AddressCorrector:
    """`correct(line) -> line` with the address tail's unit names fixed where the match is confident."""

    def __init__(
        self,
        tone_style: str = "old",
        max_relative_distance: float = 0.34,
        max_distance: int = 3,
        min_fuzzy_length: int = 4,
        max_chain_error: float = 0.25,
    ) -> None:
        """A name of length n matches a span within min(`max_distance`, n * `max_relative_distance`) edits;
        names shorter than `min_fuzzy_length` only exactly. A chain that changes anything must hold two or
        more units and at most `max_chain_error` edits per character of its names."""
        self.tree = admin_tree(tone_style)
        self.max_relative_distance = max_relative_distance
        self.max_distance = max_distance
        self.min_fuzzy_length = min_fuzzy_length
        self.max_chain_error = max_chain_error
        # per children dict of the tree (they live as long as it does) and level
        self._index: dict[tuple[int, str], tuple[list[str], list]] = {}
        self._prefixes = {
            level: [p.split() for p in sorted(words, key=lambda p: -len(p.split()))]
            for level, words in PREFIXES.items()
        }

    def _allowed(self, name: str) -> int:
        if len(name) < self.min_fuzzy_length:
            return 0
        return min(self.max_distance, int(len(name) * self.max_relative_distance))

    def _candidates(self, nodes: dict, level: str) -> tuple[list[str], list[tuple[str, _Node, str, int]]]:
        """`nodes`' written names at `level`: their keys, and per key (name, node, digits, allowed edits)."""
        cached = self._index.get((id(nodes), level))
        if cached is None:
            entries = [
                (written, node, _digits(written), self._allowed(written))
                for (node_level, _), node in nodes.items()
                if node_level == level
                for written in node.names
            ]
            cached = ([_key(e[0]) for e in entries], entries)
            self._index[(id(nodes), level)] = cached
        return cached

    def _spans(self, words: list[str], end: int, level: str, nodes: dict) -> list[tuple[Match, _Node]]:
        """Every unit in `nodes` matching words[start:end] for some start, with its best written name."""
        keys, entries = self._candidates(nodes, level)
        out = []
        for n_words in range(1, min(MAX_SPAN_WORDS, end) + 1):
            span = " ".join(words[end - n_words : end])
            span_key, span_digits = _key(span), _digits(span)
            hits = process.extract(
                span_key, keys, scorer=Levenshtein.distance, score_cutoff=self.max_distance, limit=None
            )
            for _, d, i in hits:
                written, node, digits, allowed = entries[i]
                if d <= allowed and digits == span_digits:
                    out.append((Match(level, written, end - n_words, end, int(d)), node))
        return out

    def _skip_prefix(self, words: list[str], end: int, level: str) -> int:
        """Where the unit's type word(s) before words[end] start (`end` when there are none)."""
        for prefix in self._prefixes[level]:
            start = end - len(prefix)
            if start >= 0 and [_key(w) for w in words[start:end]] == [_key(p) for p in prefix]:
                return start
        return end

    def _chains(self, words: list[str], end: int, nodes: dict, levels: tuple[str, ...]) -> list[list[Match]]:
        """Every chain of units ending at words[end], a unit per level in order, each under the last."""
        chains: list[list[Match]] = [[]]
        for level in levels:
            for match, node in self._spans(words, end, level, nodes):
                before = self._skip_prefix(words, match.start, level)
                below = ("ward",) if level == "district" else ("district", "ward")
                if level == "ward" or not node.children:
                    chains.append([match])
                    continue
                for rest in self._chains(words, before, node.children, below):
                    chains.append([match, *rest])
        return chains

    def best_chain(self, line: str) -> list[Match]:
        """The chain that explains the end of `line` best (most characters matched, fewest edits), [] if none."""
        words = line.split()
        chains = self._chains(words, len(words), self.tree.provinces, ("province",))
        chains += self._chains(words, len(words), self.tree.districts, ("district",))

        def gain(chain: list[Match]) -> tuple[float, int]:
            matched = sum(len(m.name) - 3 * m.distance for m in chain)
            return matched, -sum(m.end - m.start for m in chain)

        return max(chains, key=gain)

    def correct(self, line: str, chain: list[Match] | None = None) -> str:
        """`line` with its tail's unit names spelled as the tree spells them. `chain`: `best_chain(line)`
        when the caller has it already."""
        chain = self.best_chain(line) if chain is None else chain
        edits = sum(m.distance for m in chain)
        if not edits:
            return line
        if len(chain) < 2 or edits > self.max_chain_error * sum(len(m.name) for m in chain):
            return line
        words = line.split()
        for m in sorted(chain, key=lambda m: -m.start):  # right to left: earlier indices stay valid
            span = " ".join(words[m.start : m.end])
            name = m.name.upper() if span.isupper() and len(span) > 1 else m.name
            words[m.start : m.end] = name.split()
        return " ".join(words)
