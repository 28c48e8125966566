"""Measure a training machine before spending its minutes: usable cores, data loading, model steps.

    python scripts/gpu_probe.py [--experiment lite1_ctc] [--workers 0 4 14] [--batch 64] [Hydra overrides]

Prints one table: how many busy processes the CPU runs at full speed; the model's training steps/s (no data
loading) at one batch width, at a new width every step and at those widths again (a GPU plans its kernels
for each new shape on the CPU); the training stream's lines/s at each worker count (no model). Training runs
at the slower of the last two. Reads the real data from VIHTR_DATA_ROOT (scripts/pack_data.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import vihtr  # noqa: F401  (torchvision fix first)
from vihtr.training.config import CONFIG_DIR, register_resolvers
from vihtr.training.system import OCRSystem


def _spin(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def parallel_speedup(processes: int, seconds: float = 1.0) -> float:
    """Total busy-loop work of `processes` processes over that of one: the cores they really get."""
    one = _spin(seconds)
    with mp.get_context("spawn").Pool(processes) as pool:
        return sum(pool.map(_spin, [seconds] * processes)) / one


OVERRIDES: list[str] = []  # Hydra overrides from the command line, for every measurement


def config(experiment: str, workers: int, batch: int):
    root = os.environ.get("VIHTR_DATA_ROOT", "data/packed")
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose(
            "train",
            overrides=[
                f"experiment={experiment}",
                f"paths.data_root={root}",
                f"data.sources.vnondb.path={root}/vnondb/lines.npz.xz",
                f"data.num_workers={workers}",
                f"data.persistent_workers={workers > 0}",
                f"data.batch_size={batch}",
                "model.backbone_weights=null",  # random weights time the same
                "data.samples_per_epoch=10000000",  # no epoch end inside a measurement
                *OVERRIDES,
            ],
        )


def loader_rate(experiment: str, workers: int, batch: int, seconds: float) -> float:
    """Lines/s the training stream delivers, after its first batch (worker start-up excluded)."""
    datamodule = instantiate(config(experiment, workers, batch).data)
    datamodule.setup("fit")
    batches = iter(datamodule.train_dataloader())
    next(batches)
    start, lines = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        lines += next(batches)["images"].shape[0]
    return lines / (time.perf_counter() - start)


def step_timer(experiment: str, batch: int, device: str):
    """A function: widths -> training steps/s of the experiment's model, one step per width, each on the
    same real line padded to that width (AMP on a GPU; no data loading)."""
    cfg = config(experiment, 0, batch)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    sample = next(iter(datamodule.train_dataloader()))
    line = sample["images"][:1]
    model: OCRSystem = instantiate(cfg.model, _recursive_=False, _convert_="all").to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    targets = sample["targets"][:1].expand(batch, -1).contiguous().to(device)
    lengths = sample["target_lengths"][:1].expand(batch).contiguous().to(device)
    amp = torch.autocast(device, dtype=torch.float16, enabled=device == "cuda")
    scaler = torch.amp.GradScaler(enabled=device == "cuda")

    def step(width: int) -> None:
        images = torch.nn.functional.pad(line, (0, max(0, width - line.shape[-1])), value=1.0)[..., :width]
        data = {
            "images": images.expand(batch, -1, -1, -1).contiguous().to(device),
            "widths": torch.full((batch,), width, device=device),
            "targets": targets,
            "target_lengths": lengths,
        }
        with amp:
            loss = model._losses(data)["loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def steps_per_second(widths: list[int]) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for width in widths:
            step(width)
        if device == "cuda":
            torch.cuda.synchronize()
        return len(widths) / (time.perf_counter() - start)

    return steps_per_second


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", default="lite1_ctc")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 4, 14])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=896, help="line width of the step-rate batch, px")
    parser.add_argument("--seconds", type=float, default=15.0, help="per loader measurement")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. data.sources.kalapa.folds_csv=null"
    )
    args = parser.parse_args()
    OVERRIDES.extend(args.overrides)
    register_resolvers()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cores = os.cpu_count() or 1
    rows = [("cores (os.cpu_count)", f"{cores}")]
    for n in sorted({1, cores // 2, cores}):
        rows.append((f"busy-loop speed-up, {n} processes", f"{parallel_speedup(n):.1f}x"))
        print(*rows[-1], sep=": ", flush=True)
    timer = step_timer(args.experiment, args.batch, device)
    timer([args.width] * 3)  # warm-up
    new_widths = [512 + 16 * i for i in range(args.steps)]  # every step a width not seen before
    for name, widths in (
        (f"one width ({args.width} px)", [args.width] * args.steps),
        (f"a new width every step ({new_widths[0]}-{new_widths[-1]} px)", new_widths),
        ("the same widths again", new_widths),
    ):
        rate = timer(widths)
        rows.append(
            (
                f"model steps/s, batch {args.batch}, {device}, {name}",
                f"{rate:.1f} ({rate * args.batch:.0f} lines/s)",
            )
        )
        print(*rows[-1], sep=": ", flush=True)
    for workers in args.workers:
        rate = loader_rate(args.experiment, workers, args.batch, args.seconds)
        rows.append((f"training stream, {workers} workers", f"{rate:.0f} lines/s"))
        print(*rows[-1], sep=": ", flush=True)
    print(f"\n| {args.experiment} | measured |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
