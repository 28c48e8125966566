"""vihtr: Vietnamese handwritten text-line recognition."""

from vihtr import _torchvision_compat  # noqa: F401  (must run before timm/torchmetrics/lightning import torchvision)

__version__ = "0.1.0"
