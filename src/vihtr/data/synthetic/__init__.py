"""Synthetic handwriting lines: vendored fonts, a renderer, text generators and line sources."""

from vihtr.data.synthetic.address import AddressGenerator
from vihtr.data.synthetic.corpus import CorpusLineGenerator, WordSequenceGenerator
from vihtr.data.synthetic.fonts import font_names
from vihtr.data.synthetic.render import LineRenderer
from vihtr.data.synthetic.sources import (
    AddressSource,
    CorpusSource,
    RealLabelSource,
    SyntheticSource,
    WordSource,
)

__all__ = [
    "AddressGenerator",
    "AddressSource",
    "CorpusLineGenerator",
    "CorpusSource",
    "LineRenderer",
    "RealLabelSource",
    "SyntheticSource",
    "WordSequenceGenerator",
    "WordSource",
    "font_names",
]
