"""The shipped default holds its accuracy: absolute CER bounds on held-out lines (writer fold 0, never trained
on), per source and decoding domain, read as users read (`Predictor.from_release`, the CLI's onnx backend).

The bounds sit about 1.35x above what the release of 2026-12-07 07:30 scored on these lines (Kalapa 7.38 %
`general`, 5.54 % `auto`; VNOnDB 26.13 % `general`, 23.25 % `prose` and `auto`; the release of 10:05 reads
them at 7.09, 5.02, 24.09 and 22.20 %), so a release that reads clearly worse fails; a release whose weights
are shuffled fails by far (the last test shows the check can fail)."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO_ROOT

from vihtr.training.evaluate import compose_eval_config, evaluation_lines, read_lines, summarise

SHIPPED_DEFAULT = REPO_ROOT / "models" / "vihtr-lite1"
LINES_PER_SOURCE = 48
# (source, domain) -> the CER the shipped default must stay under on these lines
BOUNDS = {
    ("kalapa", "general"): 0.105,
    ("kalapa", "auto"): 0.08,
    ("vnondb", "general"): 0.36,
    ("vnondb", "prose"): 0.315,
    ("vnondb", "auto"): 0.315,
}


def held_out_lines(predictor, data_root, sources=("kalapa", "vnondb")) -> dict[str, list]:
    """A seeded sample of fold 0's validation lines, as `scripts/release.py score --limit` reads them."""
    overrides = ["fold=0", f"paths.data_root={data_root}", f"data.val_size_per_source={LINES_PER_SOURCE}"]
    overrides += [f"data.val_sources.{s}=null" for s in ("kalapa", "vnondb") if s not in sources]
    by_source: dict[str, list] = {}
    for line in evaluation_lines(compose_eval_config(overrides), predictor):
        by_source.setdefault(line.source, []).append(line)
    return by_source


def cer_of(predictor, lines, domain) -> float:
    return summarise(read_lines(predictor, lines, domain))["all"]["cer"]


@pytest.fixture(scope="module")
def shipped(data_root):
    from vihtr.inference.predictor import Predictor

    predictor = Predictor.from_release(SHIPPED_DEFAULT, backend="onnx", threads=1)
    return predictor, held_out_lines(predictor, data_root)


@pytest.mark.parametrize("source, domain", sorted(BOUNDS))
def test_the_shipped_default_reads_held_out_lines_within_its_bound(shipped, source, domain):
    predictor, lines = shipped
    assert len(lines[source]) == LINES_PER_SOURCE
    cer = cer_of(predictor, lines[source], domain)
    assert cer < BOUNDS[source, domain], f"{source} ({domain}): CER {cer:.4f}"


def test_a_release_with_shuffled_weights_fails_the_bound(data_root, tmp_path):
    import shutil

    from vihtr.inference.predictor import Predictor

    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED_DEFAULT, broken)
    state = torch.load(broken / "weights.pt", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    for key, value in state.items():
        if value.is_floating_point() and value.numel() > 1 and "running_var" not in key:
            flat = value.flatten()
            state[key] = flat[torch.randperm(flat.numel(), generator=generator)].view_as(value)
    torch.save(state, broken / "weights.pt")
    predictor = Predictor.from_release(broken, backend="torch", threads=1)
    lines = held_out_lines(predictor, data_root, sources=("kalapa",))
    assert cer_of(predictor, lines["kalapa"][:16], "general") > 3 * BOUNDS["kalapa", "general"]
