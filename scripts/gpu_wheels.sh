#!/usr/bin/env bash
# Wheels a lent GPU machine lacks (its Python 3.12 has torch, timm, lightning, opencv, scipy, pandas, but not
# these), at the versions installed here, into .whl/ (git-ignored; carried with the call, ~14 MB).
#   scripts/gpu_wheels.sh            then, on the machine, scripts/train_gpu.sh installs them into /tmp/site
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NEEDED="hydra-core omegaconf albumentations albucore pydantic pydantic-core annotated-types typing-inspection
typing-extensions editdistance stringzilla simsimd vietnamadminunits shapely geopy geographiclib unidecode"
mkdir -p .whl
for name in $NEEDED; do
  version=$("$PY" -m pip show "$name" | sed -n 's/^Version: //p')
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$name==$version"
done
# antlr4-python3-runtime (omegaconf's parser) ships as a source package only: pure Python, built here
version=$("$PY" -m pip show antlr4-python3-runtime | sed -n 's/^Version: //p')
python3 -m pip wheel -q --no-deps -w .whl "antlr4-python3-runtime==$version"
du -sh .whl
