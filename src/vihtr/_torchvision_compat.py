"""Make the PyPI torchvision (a CUDA build) importable next to the CPU torch.

torchvision's C++ extension cannot load against the CPU torch, and its Python side then fails on
`register_fake("torchvision::nms")` because that operator schema was never defined. Defining the two
schemas first lets torchvision import; only its C++ ops (nms, roi_align, ...) stay unavailable, and
vihtr uses none of them. Importing `vihtr` runs this once, before timm, torchmetrics or lightning
import torchvision. Where the extension loads (a CUDA machine), nothing is changed.
"""

import importlib.util
import os
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_KEEP: list = []  # a torch.library.Library un-registers its ops when garbage-collected


def _extension_loads() -> bool:
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to patch
    folder = list(spec.submodule_search_locations)[0]
    ext = [f for f in os.listdir(folder) if f.startswith("_C.") and f.endswith((".so", ".pyd"))]
    if not ext:
        return False
    try:
        torch.ops.load_library(os.path.join(folder, ext[0]))
        return True
    except (OSError, RuntimeError):
        return False


def patch() -> None:
    if "torchvision" in sys.modules or _KEEP:
        return
    if _extension_loads():
        return
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        lib.define(schema)
    _KEEP.append(lib)


patch()
