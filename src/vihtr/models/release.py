"""Released models: one folder with `weights.pt` (fp16 state dict) and `config.json`.

`config.json` carries everything needed to use the weights: the model config (charset included), the
image preprocessing, and metadata: how to read with it (`decode_method`, `domain`), its confidence
`calibration`, where its training stood (`schedule`), and free-form notes (training data, scores).
`Release` is the one place that reads and writes that folder. Loading gives an fp32 model in eval mode.
`average_checkpoints` averages the weights of several checkpoints (the seed's last-k averaging) into one
state dict; `network_state` takes the network's part of a training checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vihtr.data.preprocess import Preprocess
from vihtr.models.decoding import DECODE_METHODS
from vihtr.models.ocr import OCRModel

RELEASE_FORMAT = "vihtr-release"
RELEASE_VERSION = 1
WEIGHTS_FILE = "weights.pt"
CONFIG_FILE = "config.json"
# a training checkpoint's network weights are the LightningModule's `model.` entries; what else it trains
# beside them (the CTC shortcut) is not part of a release
NETWORK_PREFIX = "model."


def network_state(state: dict[str, torch.Tensor], prefix: str = NETWORK_PREFIX) -> dict[str, torch.Tensor]:
    """The network's weights in a training checkpoint's state dict, without their prefix; a bare network
    state dict (no key under the prefix) as it is."""
    if not any(k.startswith(prefix) for k in state):
        return dict(state)
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


class Release:
    """A released model folder: what it holds, read on demand (never cached: a calibration written by
    another process is seen), and its metadata updated in place. `opened()` reads config.json once for a
    reader that asks for several of its fields and then loads the weights."""

    def __init__(self, folder: str | os.PathLike, config: dict | None = None) -> None:
        self.folder = Path(folder)
        self._config = config  # held by `opened()`; None: read on each access

    def __repr__(self) -> str:
        return f"Release({str(self.folder)!r})"

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_FILE

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS_FILE

    def exists(self) -> bool:
        return self.config_path.is_file()

    @property
    def config(self) -> dict:
        """config.json ({} when the folder has none)."""
        if self._config is not None:
            return self._config
        if not self.exists():
            return {}
        return json.loads(self.config_path.read_text(encoding="utf-8"))

    def opened(self) -> Release:
        """This release with config.json read now, once, and held; refused when the folder holds no release
        this code can read."""
        config = self.config
        if not config:
            raise FileNotFoundError(f"{self.folder} is not a released model: no {CONFIG_FILE}")
        if config.get("format") != RELEASE_FORMAT or config.get("version", 0) > RELEASE_VERSION:
            raise ValueError(f"{self.config_path}: not a vihtr release this code can read")
        return Release(self.folder, config)

    @property
    def metadata(self) -> dict:
        return self.config.get("metadata", {})

    @property
    def model_config(self) -> dict:
        return self.config.get("model", {})

    @property
    def decode_method(self) -> str | None:
        """The decoding it recommends (the method that scored best on its held-out data), or None."""
        method = self.metadata.get("decode_method")
        return method if method in DECODE_METHODS else None

    @property
    def domain(self) -> str | None:
        """The decoding domain it reads in by default, or None (the reader's default)."""
        return self.metadata.get("domain")

    @property
    def held_out_fold(self) -> int | None:
        """The writer fold its training never saw (what its scores and calibration are read on), or None."""
        fold = self.metadata.get("held_out_fold")
        return None if fold is None else int(fold)

    @property
    def calibration(self) -> dict | None:
        """Its confidence calibration as stored (`vihtr.inference.calibration.Calibration.from_dict`), or None."""
        return self.metadata.get("calibration") or None

    def update_metadata(self, **fields) -> None:
        """Set metadata fields and rewrite config.json whole (written beside it, then moved over it)."""
        config = self.config
        if not config:
            raise FileNotFoundError(f"{self.folder} is not a released model: no {CONFIG_FILE}")
        config.setdefault("metadata", {}).update(fields)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(self.config_path)

    def load(self, device: str | torch.device = "cpu") -> tuple[OCRModel, Preprocess, dict]:
        """-> (fp32 model in eval mode on `device`, its Preprocess, its metadata)."""
        config = self.opened().config
        model = OCRModel(**config["model"])
        state = self.state_dict()
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        return model.to(device).eval(), Preprocess.from_dict(config["preprocess"]), config.get("metadata", {})

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stored weights as they are (fp16)."""
        return torch.load(self.weights_path, map_location="cpu", weights_only=True)

    def parameter_count(self) -> int:
        """Learnt parameters (batch-norm running statistics and counters left out)."""
        return sum(
            v.numel() for k, v in self.state_dict().items() if v.is_floating_point() and "running_" not in k
        )


def save_release(
    model: OCRModel, folder: str | os.PathLike, preprocess: Preprocess, metadata: dict | None = None
) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
        for k, v in model.state_dict().items()
    }
    torch.save(state, folder / WEIGHTS_FILE)
    config = {
        "format": RELEASE_FORMAT,
        "version": RELEASE_VERSION,
        "model": model.config,
        "preprocess": preprocess.to_dict(),
        "metadata": metadata or {},
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return folder


def load_release(
    folder: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[OCRModel, Preprocess, dict]:
    """-> (fp32 model in eval mode on `device`, its Preprocess, its metadata): `Release(folder).load`."""
    return Release(folder).load(device)


def _model_state(path: str | os.PathLike, prefix: str) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    return network_state(state.get("state_dict", state), prefix)


def average_checkpoints(
    paths: list[str | os.PathLike], prefix: str = NETWORK_PREFIX
) -> dict[str, torch.Tensor]:
    """Mean of the floating-point weights of N Lightning checkpoints or state-dict files.

    Only keys starting with `prefix` are kept, with the prefix removed ("" keeps everything; a file with
    no key under it is taken as a bare network state dict, `network_state`), so the result loads straight
    into the network. Integer buffers (BatchNorm's step counters) come from the
    last file.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    states = [_model_state(p, prefix) for p in paths]
    keys = states[0].keys()
    if not keys:
        raise ValueError(f"{paths[0]} has no weights under the prefix {prefix!r}")
    for path, state in zip(paths[1:], states[1:]):
        if state.keys() != keys:
            raise ValueError(f"{path} does not hold the same weights as {paths[0]}")
    return average_state_dicts(states)


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Mean of floating-point tensors (in fp32, back to their dtype); integer buffers come from the last."""
    averaged = {}
    for key, last in states[-1].items():
        values = [s[key] for s in states]
        if last.is_floating_point():
            averaged[key] = torch.stack([v.float() for v in values]).mean(dim=0).to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged
