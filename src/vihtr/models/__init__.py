"""The recognition networks as plain `nn.Module`s: encoder, decoders, decoding, losses, releases."""

from vihtr.models.decoding import DecodeResult
from vihtr.models.ocr import OCRModel

__all__ = ["DecodeResult", "OCRModel"]
