"""Export released models to ONNX (the same as `vihtr export-onnx`), checking onnxruntime against torch.

python scripts/export_onnx.py models/vihtr-lite1 [models/extra/vihtr-lite1-fast ...] [-o out_dir]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import vihtr  # noqa: F401  (torchvision fix before timm)
from vihtr.inference.onnx_export import export_release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="released model folders")
    parser.add_argument("-o", "--output", type=Path, help="output root (default: <model>/onnx)")
    args = parser.parse_args()
    for model in args.models:
        output = args.output / Path(model).name if args.output else None
        for path in export_release(model, output, check=True):
            print(path)


if __name__ == "__main__":
    main()
