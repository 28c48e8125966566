"""Measure `vihtr adapt` on writers the model never saw (Kalapa fold 0: 16 writers x 27 lines).

    python scripts/adapt_benchmark.py --out models/adapt_benchmark.json          # everything (~30 min)
    python scripts/adapt_benchmark.py --writers 4 --skip-split --skip-forgetting  # a quick look

- Few-shot writer: adapt on a writer's first 10 lines (`vihtr adapt` keeps 2 of them out to check itself),
  then read that writer's other 17 lines with the base and with the adapted release.
- New forms, new writers: adapt on all lines of 8 writers, read the other 8 writers' lines.
- Forgetting: VNOnDB fold 0 (all lines) read by the 8-writer release, against the base.
The adapted weights are scored whether or not `vihtr adapt` would release them (`keep_worse`); `released_*`
is what it does release (the base where its own held-out check saw no gain).
CER is the plain reading (`general`, the network alone) and the `auto` domain's; the time is what `adapt`
reports (training and export). Pause other work on the machine while it runs: the times are 2 threads'.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import vihtr  # noqa: F401  (torchvision fix first)
from vihtr.inference.predictor import Predictor
from vihtr.paths import REPO_ROOT, data_root, kalapa_root
from vihtr.review.adapt import adapt, line_cer
from vihtr.training.evaluate import read_lines, summarise

sys.path.insert(0, str(Path(__file__).resolve().parent))
import release  # noqa: E402


def writer_lines(kalapa: Path, fold: int) -> dict[str, list[tuple[str, str]]]:
    """Writer -> its lines of the held-out fold (absolute image path, label), in the order they were written."""
    from vihtr.data.sources.real import LineFolderSource

    source = LineFolderSource(kalapa, name="kalapa", fold=fold, split="val", tone_style="old")
    by_writer: dict[str, list] = {}
    for key, text, writer in zip(source.keys, source.texts, source.groups):
        by_writer.setdefault(writer, []).append((str((kalapa / key).resolve()), text))
    number = lambda line: int(re.findall(r"\d+", Path(line[0]).stem)[-1])  # noqa: E731
    return {w: sorted(lines, key=number) for w, lines in sorted(by_writer.items())}


def folder_of(lines, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.tsv").write_text("".join(f"{i}\t{t}\n" for i, t in lines), encoding="utf-8")
    return root


def scores(base, adapted, test_lines) -> dict:
    return {
        f"{which}_{domain}": round(line_cer(model, test_lines, domain, threads=2), 4)
        for which, model in (("base", base), ("adapted", adapted))
        for domain in ("general", "auto")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "vihtr-lite1"))
    parser.add_argument("--data-root", type=Path, default=data_root())
    parser.add_argument("--writers", type=int, default=16, help="few-shot: how many fold-0 writers")
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--skip-split", action="store_true")
    parser.add_argument("--skip-forgetting", action="store_true")
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides of experiment=adapt")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    writers = writer_lines(kalapa_root(args.data_root), fold=0)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": Path(args.model).name,
        "steps": args.steps,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        few = []
        for writer in list(writers)[: args.writers]:
            lines = writers[writer]
            shots, rest = lines[: args.shots], lines[args.shots :]
            out = tmp / f"few-{Path(writer).name}"
            data = folder_of(shots, tmp / f"data-{Path(writer).name}")
            report = adapt(
                [data], args.model, out, steps=args.steps, overrides=args.override, keep_worse=True
            )
            row = {
                "writer": writer,
                "test_lines": len(rest),
                "seconds": report.seconds,
                "improved": report.improved,
            }
            row.update(scores(args.model, out, rest))
            for domain in ("general", "auto"):  # what `vihtr adapt` releases: the base where it did not help
                row[f"released_{domain}"] = row[f"adapted_{domain}" if report.improved else f"base_{domain}"]
            few.append(row)
            print(json.dumps(row), flush=True)
        if few:
            mean = lambda key: sum(r[key] for r in few) / len(few)  # noqa: E731
            results["few_shot"] = {
                "writers": few,
                **{
                    f"mean_{k}": round(mean(k), 4)
                    for k in few[0]
                    if k.startswith(("base_", "adapted_", "released_"))
                },
                "released_adapted": sum(r["improved"] for r in few),
                "mean_seconds": round(mean("seconds"), 1),
            }
        if not args.skip_split:
            names = list(writers)
            train = [line for w in names[:8] for line in writers[w]]
            test = [line for w in names[8:] for line in writers[w]]
            out = tmp / "eight-writers"
            data = folder_of(train, tmp / "data-eight")
            report = adapt(
                [data], args.model, out, steps=args.steps, overrides=args.override, keep_worse=True
            )
            results["eight_writers"] = {"train_lines": len(train), "test_lines": len(test), "seconds": report.seconds,
                                        "improved": report.improved, **scores(args.model, out, test)}  # fmt: skip
            print(json.dumps(results["eight_writers"]), flush=True)
            if not args.skip_forgetting:
                held = argparse.Namespace(
                    fold=0, data_root=str(args.data_root), limit=None, sources=["vnondb"]
                )
                for which, model in (("base", args.model), ("adapted", out)):
                    predictor = Predictor.from_release(model, threads=2, domain="general")
                    vnondb = release.held_out(held, predictor)["vnondb"]
                    cer = summarise(read_lines(predictor, vnondb))["all"]["cer"]
                    results.setdefault("forgetting_vnondb_general", {})[which] = round(cer, 4)
                print(json.dumps(results["forgetting_vnondb_general"]), flush=True)
    print(json.dumps({k: v for k, v in results.items() if k != "few_shot"}, indent=1))
    if "few_shot" in results:
        print(json.dumps({k: v for k, v in results["few_shot"].items() if k != "writers"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
