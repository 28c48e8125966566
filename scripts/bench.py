"""Inference speed and size of the released models, their ensemble and the ONNX fast path, on this CPU.

    python scripts/bench.py                       # the shipped models (random b1/b2 stand-ins if none)
    python scripts/bench.py --models models/vihtr-lite1 --threads 2 --out bench.json

For every configuration: parameters, weights on disk (MB), latency per line at batch 1 (median, p90;
end to end: image file -> text), throughput at batch 16 (lines/s) and peak memory (max RSS of a child
process that runs only that configuration). A CTC model also gets rows in the `prose`, `address` and `auto`
decoding domains: their difference to the plain `ctc` row is what the domain adds per line. The default
model also gets a `pages` row: whole handwritten pages of about 8 lines (held-out VNOnDB tablet screens,
drawn as phone photos) read by the page reader on the fast path; its `median_ms` is per page. Prints a
Markdown table and writes JSON. `--only TEXT` times only the rows whose name holds TEXT and updates those
rows of an existing `--out` file.

Without released models it benchmarks random-init models of the real architecture (EfficientNetV2
B1/B2, d_model 256, 3-layer transformer decoder + CTC head, 64 px high lines) whose `max_len` is 40: a
random decoder never ends a line, so each line costs exactly 40 decoding steps (a typical Kalapa line
has 30-45 characters).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from vihtr.models.release import Release  # noqa: E402
from vihtr.paths import REPO_ROOT, data_root, kalapa_root  # noqa: E402

REPO = REPO_ROOT
DEFAULT_IMAGES = kalapa_root() / "images"
TARGETS_MS = {"ensemble": 150.0, "fast path": 20.0}
TARGET_LINES_PER_S = 50.0


def random_releases(folder: Path) -> list[str]:
    """Stand-ins for the released models: the real architecture with random weights."""
    import torch

    import vihtr  # noqa: F401
    from vihtr.data.preprocess import Preprocess
    from vihtr.models.ocr import OCRModel
    from vihtr.models.release import save_release

    paths = []
    for name, backbone in (("random-b1", "tf_efficientnetv2_b1"), ("random-b2", "tf_efficientnetv2_b2")):
        if Release(folder / name).exists():  # made by an earlier run with the same --work
            paths.append(str(folder / name))
            continue
        torch.manual_seed(0)
        model = OCRModel(backbone=backbone, d_model=256, decoder_layers=3, ctc=True, max_len=40).eval()
        paths.append(
            str(save_release(model, folder / name, Preprocess(height=64, max_width=1024), {"random": True}))
        )
    return paths


def line_images(images_dir: Path, count: int, folder: Path) -> list[str]:
    """Real line images (the first `count` files, sorted), or generated lines when there are none."""
    found = sorted(p for p in images_dir.rglob("*.jpg")) if images_dir.is_dir() else []
    if found:
        return [str(p) for p in found[:count]]
    from PIL import Image, ImageDraw

    paths = []
    for i in range(count):
        image = Image.new("L", (900, 80), 255)
        ImageDraw.Draw(image).text((10, 25), f"Số {i} Đường Hoàng Văn Thụ P {i % 9} Phú Nhuận", fill=0)
        path = folder / f"line{i}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def data_relative(path: Path) -> str:
    """A path as a committed report may record it: under the data root, not this machine's folders."""
    try:
        return "$VIHTR_DATA_ROOT/" + str(path.resolve().relative_to(data_root().resolve()))
    except ValueError:
        return path.name


def size_mb(config: dict) -> float:
    if config["backend"] == "onnx":
        files = [
            f for m in config["models"] for f in (Path(config["onnx_cache"]) / Path(m).name).glob("*.onnx")
        ]
    else:
        files = [Release(m).weights_path for m in config["models"]]
    return sum(f.stat().st_size for f in files) / 1e6


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux's VmHWM starts afresh at exec; ru_maxrss would carry the
    parent's peak into the child."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def count_parameters(release: str) -> int:
    return Release(release).parameter_count()


def page_images(folder: Path, count: int = 6) -> list[str]:
    """Held-out handwritten pages of 7-9 lines (VNOnDB fold 0 screens as phone photos), saved as JPEG."""
    from vihtr.data.pages import page_set

    pages = [p for p in page_set("vnondb-photo", 0, count=40, seed=0) if 7 <= len(p.texts) <= 9][:count]
    paths = []
    for i, page in enumerate(pages):
        path = folder / f"page{i}.jpg"
        page.image.save(path, quality=90)
        paths.append(str(path))
    return paths


def measure_pages(config: dict) -> dict:
    """Whole pages through the page reader: seconds per page (batch of one page at a time)."""
    import torch

    from vihtr.inference.pages import PageReader
    from vihtr.inference.predictor import Predictor

    torch.set_num_threads(config["threads"])
    predictor = Predictor.from_release(
        config["models"],
        threads=config["threads"],
        backend=config["backend"],
        onnx_cache=config["onnx_cache"],
    )
    reader = PageReader(predictor)
    pages = config["pages"]
    reader.read(pages[0])  # warm-up: LMs, unit tree, first allocations
    seconds, lines = [], 0
    for path in pages:
        start = time.perf_counter()
        lines += len(reader.read(path).lines)
        seconds.append(time.perf_counter() - start)
    return {
        "name": config["name"],
        "params_m": round(sum(count_parameters(m) for m in config["models"]) / 1e6, 2),
        "size_mb": round(size_mb(config), 1),
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "p90_ms": round(max(seconds) * 1000, 1),
        "lines_per_s": round(lines / sum(seconds), 1),
        "lines_per_page": round(lines / len(pages), 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def measure(config: dict) -> dict:
    """Run one configuration (in a child process: its max RSS is this configuration's peak)."""
    import torch

    if config.get("pages"):
        return measure_pages(config)

    import vihtr  # noqa: F401
    from vihtr.inference.predictor import Predictor

    torch.set_num_threads(config["threads"])
    params = sum(count_parameters(m) for m in config["models"])
    predictor = Predictor.from_release(
        config["models"],
        threads=config["threads"],
        method=config["method"],
        batch_size=1,
        backend=config["backend"],
        onnx_cache=config["onnx_cache"],
        domain=config.get("domain", "general"),
    )
    lines = config["images"]
    predictor.predict(lines[:2])  # warm-up: first calls allocate (and build a domain's LM and unit tree)
    latencies = []
    for path in lines[: config["latency_lines"]]:
        start = time.perf_counter()
        predictor.predict_one(path)
        latencies.append((time.perf_counter() - start) * 1000)
    predictor.batch_size = 16
    start = time.perf_counter()
    predictor.predict(lines)
    throughput = len(lines) / (time.perf_counter() - start)
    return {
        "name": config["name"],
        "params_m": round(params / 1e6, 2),
        "size_mb": round(size_mb(config), 1),
        "median_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(statistics.quantiles(latencies, n=10)[-1], 1),
        "lines_per_s": round(throughput, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def configurations(models: list[str], args, images: list[str], onnx_cache: str) -> list[dict]:
    base = {
        "threads": args.threads,
        "images": images,
        "latency_lines": args.latency_lines,
        "onnx_cache": onnx_cache,
    }
    configs = []
    for m in models:
        name = Path(m).name
        # a CTC-only model has no autoregressive decoder to time
        ctc_only = Release(m).model_config.get("decoder") == "none"
        greedy = [] if ctc_only else [
            {**base, "name": f"{name} torch greedy", "models": [m], "method": "greedy", "backend": "torch"},
            {**base, "name": f"{name} onnx greedy", "models": [m], "method": "greedy", "backend": "onnx"},
        ]  # fmt: skip
        ctc = {**base, "name": f"{name} torch ctc", "models": [m], "method": "ctc", "backend": "torch"}
        # what decoding in a domain adds to the plain CTC reading (LM beam search, unit check)
        domains = [
            {**ctc, "name": f"{name} torch ctc, {d} domain", "domain": d}
            for d in ("prose", "address", "auto")
        ]
        configs += greedy + [
            ctc,
            *domains,
            {
                **base,
                "name": f"{name} onnx ctc (fast path)",
                "models": [m],
                "method": "ctc",
                "backend": "onnx",
            },
        ]
    if args.pages:  # the default model's page reading, on the fast path, in its default domain
        configs.append(
            {**base, "name": f"{Path(models[0]).name} onnx, pages of ~8 lines (ms per page)", "models": models[:1],
             "method": "ctc", "backend": "onnx", "pages": args.pages}
        )  # fmt: skip
    if len(models) > 1:
        for backend in ("torch", "onnx"):
            for method in ensemble_methods(models):
                name = f"ensemble x{len(models)} {backend} {method}"
                configs.append({**base, "name": name, "models": models, "method": method, "backend": backend})
    return configs


def ensemble_methods(models: list[str]) -> list[str]:
    """How these models can decode together: `greedy` when each has a decoder to step in lock-step, `ctc`
    when each has a CTC head (each reads the line, the models rescore the readings: any columns)."""
    configs = [Release(m).config for m in models]
    methods = []
    if all(c["model"].get("decoder") != "none" for c in configs):
        methods.append("greedy")
    if all(c["model"].get("ctc") for c in configs):
        methods.append("ctc")
    return methods


def markdown(rows: list[dict]) -> str:
    lines = [
        "| configuration | params (M) | weights (MB) | ms/line median | ms/line p90 | lines/s (batch 16) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['params_m']} | {r['size_mb']} | {r['median_ms']} | {r['p90_ms']} | "
            f"{r['lines_per_s']} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", help="released model folders (default: the shipped ones)")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of real line images")
    parser.add_argument("--lines", type=int, default=48, help="lines for the batch-16 throughput")
    parser.add_argument("--latency-lines", type=int, default=20, help="lines timed one by one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench.json"))
    parser.add_argument(
        "--work", type=Path, help="folder for stand-in models and ONNX exports (default: temporary)"
    )
    parser.add_argument(
        "--backends", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"], help="what to time"
    )
    parser.add_argument(
        "--table", type=Path, help="print the Markdown table of an earlier run's JSON (what the docs quote)"
    )
    parser.add_argument("--only", help="time only the rows whose name holds this; update them in --out")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a JSON config: measure it and print the result
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    if args.table:
        print(markdown(json.loads(args.table.read_text(encoding="utf-8"))["results"]))
        return

    import vihtr  # noqa: F401
    from vihtr.inference.onnx_export import OnnxModel
    from vihtr.inference.predictor import default_model_paths

    work = args.work or Path(tempfile.mkdtemp(prefix="vihtr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    models = args.models
    if not models:
        try:
            models = default_model_paths()
        except FileNotFoundError:
            print("no released models: benchmarking random-init b1/b2 stand-ins", file=sys.stderr)
            models = random_releases(work)
    images = line_images(args.images, args.lines, work)
    try:
        args.pages = page_images(work)
    except (FileNotFoundError, ValueError) as e:  # no VNOnDB data here: no page row
        print(f"no page row: {e}", file=sys.stderr)
        args.pages = []
    onnx_cache = str(work / "onnx")
    if "onnx" in args.backends:
        for m in models:  # export before timing, so no child pays for it
            OnnxModel.from_release(m, cache_dir=onnx_cache)
    rows = []
    for config in configurations(models, args, images, onnx_cache):
        if config["backend"] not in args.backends or (args.only and args.only not in config["name"]):
            continue
        out = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(config)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(
            f"{rows[-1]['name']}: {rows[-1]['median_ms']} ms/line, {rows[-1]['lines_per_s']} lines/s",
            file=sys.stderr,
        )
    if args.only and args.out.is_file():  # update those rows, keep the others (and say when each was timed)
        earlier = json.loads(args.out.read_text(encoding="utf-8"))
        for row in rows:
            row["date"] = time.strftime("%Y-%m-%d %H:%M")
        fresh = {row["name"]: row for row in rows}
        kept = [fresh.pop(row["name"], row) for row in earlier["results"]]
        earlier["results"] = kept + list(fresh.values())
        args.out.write_text(json.dumps(earlier, indent=1), encoding="utf-8")
        print(markdown(earlier["results"]))
        return
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python scripts/bench.py " + " ".join(sys.argv[1:]),
        "threads": args.threads,
        "images": data_relative(args.images) if args.images.is_dir() else "generated",
        "models": models,
        "targets": {"ensemble_ms": TARGETS_MS["ensemble"], "fast_path_ms": TARGETS_MS["fast path"],
                    "batched_lines_per_s": TARGET_LINES_PER_S},
        "results": rows,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(markdown(rows))
    print(
        f"\ntargets: ensemble <= {TARGETS_MS['ensemble']:.0f} ms/line, fast path <= {TARGETS_MS['fast path']:.0f} "
        f"ms/line, batched >= {TARGET_LINES_PER_S:.0f} lines/s ({args.threads} threads); JSON: {args.out}"
    )


if __name__ == "__main__":
    main()
