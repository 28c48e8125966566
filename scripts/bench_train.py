"""Where a training step's time goes, per source: data, forward, backward, optimizer, and validation.

    python scripts/bench_train.py                                   # experiment=lite1_ctc, 2 threads
    python scripts/bench_train.py --steps 12 -- model.freeze_stages=3 model.channels_last=true
    python scripts/bench_train.py --out bench_train.json --label engine

Builds the run's datamodule and LightningModule from the real Hydra config (`experiment=...` plus any
overrides after `--`), then for the mixture and for each training source alone draws `--steps` batches in
this process (rendering, augmentation, collation: the data time) and trains on them, timing forward,
backward and the optimizer step apart. Validation is timed per line on the held-out fold, as the run
validates. The first `--warmup` steps of each row are dropped (oneDNN builds its kernels per shape).
Reports line samples learnt per second = batch size / (data + forward + backward + optimizer) as if the
data were drawn in the training process; with a data worker, data overlaps the model on another core.
Run it with nothing else on the machine (or the long run paused).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from vihtr.training.config import CONFIG_DIR, register_resolvers  # noqa: E402

PARTS = ("data", "forward", "backward", "optimizer")


def compose_run(experiment: str, overrides: list[str], out: str):
    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"experiment={experiment}",
                f"hydra.run.dir={out}",
                f"paths.output_dir={out}",
                *overrides,
            ],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
        cfg.data.num_workers = 0  # the data is timed in this process
    return cfg


def train_row(system, optimizer, stream, steps: int, warmup: int) -> dict:
    """Draw and train `steps` batches; per-part seconds per batch (medians after `warmup`)."""
    times = {p: [] for p in PARTS}
    widths, lines = [], 0
    batches = iter(stream)
    for step in range(steps):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        loss = system._losses(batch)["loss"]
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        t_data, t_fwd, t_bwd, t_opt = t1 - t0, t2 - t1, t3 - t2, t4 - t3
        if step >= warmup:
            for part, t in zip(PARTS, (t_data, t_fwd, t_bwd, t_opt)):
                times[part].append(t)
            widths.append(int(batch["images"].shape[-1]))
            lines += len(batch["texts"])
    row = {part: statistics.mean(ts) for part, ts in times.items()}
    row["step"] = sum(row[p] for p in PARTS)
    row["batch"] = lines / max(len(widths), 1)
    row["lines_per_s"] = row["batch"] / row["step"]
    row["mean_width"] = statistics.mean(widths) if widths else 0
    return row


def validation_row(system, datamodule, lines: int) -> dict:
    datamodule.setup("validate")
    loader = datamodule.val_dataloader()
    system.eval()
    done, seconds = 0, 0.0
    with torch.no_grad():
        batches = iter(loader)
        while done < lines:
            t0 = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            system.decode_batch(batch)
            seconds += time.perf_counter() - t0
            done += len(batch["texts"])
    system.train()
    return {"lines": done, "ms_per_line": 1000 * seconds / max(done, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", default="lite1_ctc")
    parser.add_argument("--steps", type=int, default=14, help="batches per row (the first --warmup dropped)")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--val-lines", type=int, default=64, help="held-out lines timed (0: skip)")
    parser.add_argument("--sources", nargs="*", default=None, help="rows besides the mixture (default: each)")
    parser.add_argument("--label", default="", help="a name for this configuration in the output")
    parser.add_argument("--out", type=Path, default=None, help="append the result to this JSON list")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    args = parser.parse_args(argv)

    import hydra
    import pytorch_lightning as pl

    from vihtr.training.run import quiet_known_warnings

    quiet_known_warnings()
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, workers=False)
    cfg = compose_run(args.experiment, args.overrides, out=str(Path("/tmp") / "vihtr-bench-train"))
    datamodule = hydra.utils.instantiate(cfg.data)
    system = hydra.utils.instantiate(cfg.model, _recursive_=False, _convert_="all")
    system.train()
    params = [p for p in system.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)  # tiny: the timing, not the weights, matters here

    rows = {}
    sources = list(datamodule.train_sources) if args.sources is None else args.sources
    for name in ["mixture", *sources]:
        stream = datamodule.train_dataset()
        if name != "mixture":
            keep = list(datamodule.train_sources).index(name)
            stream.sources = [stream.sources[keep]]
            stream.weights = [1.0]
        stream.n_batches = args.steps
        rows[name] = train_row(system, optimizer, stream, args.steps, args.warmup)
        print(f"{name:14s} " + format_row(rows[name]), flush=True)
    result = {
        "label": args.label,
        "experiment": args.experiment,
        "overrides": args.overrides,
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "rows": rows,
    }
    if args.val_lines:
        result["validation"] = validation_row(system, datamodule, args.val_lines)
        print(f"validation     {result['validation']['ms_per_line']:.1f} ms per held-out line", flush=True)
    print(markdown(result))
    if args.out:
        history = json.loads(args.out.read_text()) if args.out.is_file() else []
        args.out.write_text(json.dumps([*history, result], indent=1) + "\n")
    return result


def format_row(row: dict) -> str:
    shares = " ".join(f"{p} {1000 * row[p]:.0f} ms ({100 * row[p] / row['step']:.0f} %)" for p in PARTS)
    return f"{row['lines_per_s']:.2f} lines/s, {1000 * row['step']:.0f} ms/step, width {row['mean_width']:.0f}: {shares}"


def markdown(result: dict) -> str:
    head = "| source | lines/s | ms/step | mean width px | data | forward | backward | optimizer |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        cells = [f"{1000 * row[p]:.0f} ({100 * row[p] / row['step']:.0f} %)" for p in PARTS]
        lines.append(
            f"| {name} | {row['lines_per_s']:.2f} | {1000 * row['step']:.0f} | {row['mean_width']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
