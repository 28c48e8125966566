"""Make, score and calibrate released models: the same command as `vihtr release export|score|calibrate`
(`vihtr.training.lifecycle`), kept under this name for the commands in the docs.

    python scripts/release.py export <checkpoints...> <folder> --decode-method ctc --domain auto
    python scripts/release.py score models/vihtr-lite1 --domains general auto --threads 2
    python scripts/release.py calibrate models/vihtr-lite1 --target-accuracy 0.9 --plot reliability.png
"""

from __future__ import annotations

import sys

from vihtr.cli import main as vihtr_main


def main(argv: list[str] | None = None) -> int:
    return vihtr_main(["release", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
