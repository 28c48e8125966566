"""Where things are, defined once: the repository, the real data, the per-user cache.

Hydra's configs read the same facts (the repository root and the data layout through this module's resolvers,
`${vihtr.kalapa_root:...}`; the same environment variables), so scripts, the library and training runs agree.

- `VIHTR_DATA_ROOT`: the real data (`kalapa2023/`, `vnondb/`); default `../shared/data` next to the repo.
- `VIHTR_CACHE_DIR`: what vihtr extracts or builds once per machine (the VNOnDB strokes, ~181 MB; corpus
  indexes; ONNX graphs of read-only releases); default `~/.cache/vihtr`.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
# src/vihtr -> the repository (an editable install, as the README sets up)
REPO_ROOT = PACKAGE_ROOT.parents[1]
ASSETS_DIR = PACKAGE_ROOT / "assets"


def data_root() -> Path:
    return Path(os.environ.get("VIHTR_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


def cache_dir(*parts: str) -> Path:
    return Path(os.environ.get("VIHTR_CACHE_DIR", Path.home() / ".cache" / "vihtr")).joinpath(*parts)


# the real data's layout under the data root
KALAPA_DIR = "kalapa2023"
VNONDB_ARCHIVE = ("vnondb", "InkData_line.tar.xz")


def kalapa_root(root: str | os.PathLike | None = None) -> Path:
    """The Kalapa 2023 line scans: `images/<form>/<n>.jpg` listed in `labels.tsv`, under `root` (default
    `data_root()`)."""
    return Path(root or data_root()) / KALAPA_DIR


def vnondb_archive(root: str | os.PathLike | None = None) -> Path:
    """The HANDS-VNOnDB line-level InkML archive under `root` (default `data_root()`)."""
    return Path(root or data_root()).joinpath(*VNONDB_ARCHIVE)
