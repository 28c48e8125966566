"""The install story: pins that keep CUDA out, environment.yml in step, torchvision importable on CPU torch."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> list[str]:
    lines = []
    for name in ("core", "train", "dev"):
        for line in (REPO / "requirements" / f"{name}.txt").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                lines.append(line)
    return lines


def test_torch_pins_keep_cuda_builds_out():
    reqs = _requirements()
    assert "torch==2.13.0" in reqs and "torchvision==0.28.0" in reqs


def test_environment_yml_lists_the_same_pip_dependencies():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [p for p in pip if p != "-e ."] == _requirements()


def test_torchvision_timm_torchmetrics_lightning_import_on_cpu_torch():
    import pytorch_lightning
    import timm
    import torch
    import torchmetrics
    import torchvision

    import vihtr  # noqa: F401  (registers the missing torchvision operator schemas where needed)

    net = timm.create_model("tf_efficientnetv2_b1", pretrained=False, num_classes=0).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 64)).shape == (1, net.num_features) and net.num_features == 1280
    assert torchmetrics.text.CharErrorRate()(["ab"], ["ac"]).item() == 0.5
    assert torchvision.__version__.startswith("0.28") and pytorch_lightning.__version__


def test_no_machine_paths_in_committed_files():
    """A clone must not carry the paths of the machine it was made on (home folders, work trees)."""
    repo = REPO
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(
        ["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    machine_path = re.compile(r"(?<![\w.])/(?:work|home|root|Users|tmp/pytest-of-\w+)/[\w.-]+")
    found = []
    for name in files:
        path = repo / name
        if path.suffix in {".pt", ".png", ".jpg", ".ttf", ".otf", ".gz", ".xz", ".whl"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        found += [f"{name}: {m.group(0)}" for m in machine_path.finditer(text)]
    assert not found, found


def test_data_and_cache_roots_are_defined_once_and_follow_the_environment(monkeypatch, tmp_path):
    from omegaconf import OmegaConf

    from vihtr import paths
    from vihtr.training.config import register_resolvers

    monkeypatch.setenv("VIHTR_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("VIHTR_CACHE_DIR", str(tmp_path / "cache"))
    assert paths.data_root() == tmp_path / "data"
    assert paths.cache_dir("vnondb") == tmp_path / "cache" / "vnondb"
    assert (paths.REPO_ROOT / "conf" / "train.yaml").is_file()
    register_resolvers()
    conf = OmegaConf.load(REPO / "conf" / "paths" / "default.yaml")  # what Hydra composes for training
    resolved = OmegaConf.to_container(OmegaConf.create({"paths": conf}), resolve=False)["paths"]
    hydra_view = OmegaConf.create({"paths": {k: v for k, v in resolved.items() if k != "output_dir"}})
    assert Path(hydra_view.paths.data_root) == paths.data_root()
    assert Path(hydra_view.paths.cache_dir) == paths.cache_dir()
    assert Path(hydra_view.paths.root_dir) == paths.REPO_ROOT


def test_the_readme_front_door_holds_the_two_set_up_commands_that_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == ["make train", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: install\b.*\n\t\$\(BIN\)/python -m pytest .*\btests$", makefile, re.M)
    assert re.search(r"^train: install\b.*\n\t\$\(BIN\)/python src/train\.py", makefile, re.M)
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), re.M)
    for section in ("## Use", "## Results", "## Layout"):  # the rest of the front door
        assert f"\n{section}" in readme, section


def test_the_docs_quote_the_committed_benchmark_run():
    """One figure per measurement: the speed table in the README and in the model card is the table of the
    committed `make bench` run (models/bench.json, as `scripts/bench.py --table` prints it), with its date."""
    bench = json.loads((REPO / "models" / "bench.json").read_text(encoding="utf-8"))
    table = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--table", str(REPO / "models" / "bench.json")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert len(table.splitlines()) == 2 + len(bench["results"])
    for doc in ("README.md", "models/README.md"):
        text = (REPO / doc).read_text(encoding="utf-8")
        assert table in text, f"{doc} does not quote models/bench.json's table"
        flowing = " ".join(text.split())  # the command may be wrapped across lines
        assert bench["date"] in text and bench["command"] in flowing, doc
