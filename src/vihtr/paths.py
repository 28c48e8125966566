"""Where things are, defined once: the repository, the real data, the per-user cache.

Hydra's `conf/paths/default.yaml` reads the same facts (the repository root through this module, the same
environment variables), so scripts, the library and training runs agree.

- `VIHTR_DATA_ROOT`: the real data (`kalapa2023/`, `vnondb/`); default `../shared/data` next to the repo.
- `VIHTR_CACHE_DIR`: what vihtr extracts or builds once per machine (the VNOnDB strokes, ~181 MB; corpus
  indexes; ONNX graphs of read-only releases); default `~/.cache/vihtr`.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parents[
    1
]  # src/vihtr -> the repository (an editable install, as the README sets up)
ASSETS_DIR = PACKAGE_ROOT / "assets"


def data_root() -> Path:
    return Path(os.environ.get("VIHTR_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


def cache_dir(*parts: str) -> Path:
    return Path(os.environ.get("VIHTR_CACHE_DIR", Path.home() / ".cache" / "vihtr")).joinpath(*parts)


def kalapa_root() -> Path:
    """The Kalapa 2023 line scans: `images/<form>/<n>.jpg` listed in `labels.tsv`."""
    return data_root() / "kalapa2023"


def vnondb_archive() -> Path:
    """The HANDS-VNOnDB line-level InkML archive."""
    return data_root() / "vnondb" / "InkData_line.tar.xz"
