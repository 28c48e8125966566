"""The protocol every line source follows, real or synthetic.

A source is map-style: `len(source)` lines, `source.get(index, rng)` one `Sample`. Sources that render
(InkML strokes, synthetic text) use `rng` for every random choice, so a fixed (index, seed) pair gives
the same image (deterministic validation) while training draws a fresh rng each time (a new rendering
every epoch). Synthetic sources have a nominal length set by config; their index seeds the text choice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image


@dataclass
class Sample:
    image: Image.Image  # RGB line image, dark ink on light paper
    text: str  # NFC, whitespace-collapsed, in the source's configured tone style
    source: str  # the source's name, e.g. "kalapa", "vnondb", "synth_address"
    group: str = ""  # writer / form id for grouped folds; "" for synthetic lines


@runtime_checkable
class LineSource(Protocol):
    name: str

    def __len__(self) -> int: ...

    def get(self, index: int, rng: random.Random) -> Sample: ...
