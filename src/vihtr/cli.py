"""The `vihtr` command: `vihtr predict`, `vihtr pages`, `vihtr corrections import`, `vihtr adapt`,
`vihtr export-onnx`, `vihtr release` (and `vihtr serve` when the web app is installed).

    vihtr predict line.jpg
    vihtr pages scans/ -o pages.json --txt pages_txt/    # whole pages: lines found, read top to bottom
    vihtr predict scans/ -o out.tsv --models models/vihtr-lite1 models/extra/vihtr-lite1-fast
    vihtr corrections import out.tsv -o corrections/      # after fixing the texts of out.tsv by hand
    vihtr adapt corrections/ --out models/my-forms        # fine-tune the default on them
    vihtr export-onnx models/vihtr-lite1
    vihtr release score models/vihtr-lite1                # held-out CER (also: release export, calibrate)

Subcommands register themselves with `add_parser(subparsers)` and set `func(args) -> exit code`; another
package adds its own by providing `<module>.add_parser` (see `OPTIONAL_SUBCOMMANDS`).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vihtr.inference.answers import prediction_json
from vihtr.inference.domains import DOMAINS
from vihtr.inference.types import BACKENDS
from vihtr.models.decoding import DECODE_METHODS
from vihtr.training import lifecycle

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
OUTPUT_FORMATS = {".csv": ",", ".tsv": "\t", ".json": None}
# a row of `vihtr predict`'s output: the image, then the fields of `prediction_json` a table needs
ROW_FIELDS = ["path", "text", "confidence", "review", "domain", "error"]
# modules whose `add_parser(subparsers)` adds a subcommand when they are importable (the web app's `serve`)
OPTIONAL_SUBCOMMANDS = ("vihtr.app.cli",)


def collect_inputs(target: str) -> list[str]:
    """An image file, a folder (its images, recursively, sorted) or a .txt list (one path a line)."""
    path = Path(target)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {target}")
    if path.is_dir():
        return [str(p) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if path.suffix.lower() == ".txt":
        paths = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                # relative paths in a list are relative to the list's folder
                item = Path(line)
                paths.append(str(item if item.is_absolute() else path.parent / item))
        return paths
    return [str(path)]


def write_rows(rows: list[dict], output: str | None) -> None:
    """CSV / TSV / JSON by the output's suffix; without an output, TSV on stdout."""
    fields = ROW_FIELDS
    if output is None:
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    suffix = Path(output).suffix.lower()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    if OUTPUT_FORMATS[suffix] is None:
        Path(output).write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return
    with open(output, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, delimiter=OUTPUT_FORMATS[suffix], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


class UsageError(Exception):
    """What the user asked for cannot be done: the message says why (exit status 2)."""


def run_predict(args: argparse.Namespace) -> int:
    if args.output and Path(args.output).suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"output must end in one of {sorted(OUTPUT_FORMATS)}: {args.output}")
    inputs, predictor = inputs_and_predictor(args)

    from tqdm import tqdm

    rows = []
    # chunks a few batches long: the progress bar moves, and lines within a chunk are still sorted by width
    chunk = predictor.batch_size * 4
    with tqdm(total=len(inputs), unit="line", disable=args.quiet or None, file=sys.stderr) as bar:
        for start in range(0, len(inputs), chunk):
            paths = inputs[start : start + chunk]
            for path, p in zip(paths, predictor.predict(paths)):
                answer = prediction_json(p, predictor.review_below)
                rows.append({"path": path, **{k: answer[k] for k in ROW_FIELDS[1:]}})
                if p.error:
                    tqdm.write(f"warning: {p.error}", file=sys.stderr)
            bar.update(len(paths))
    write_rows(rows, args.output)
    failed = sum(bool(r["error"]) for r in rows)
    if args.output:
        print(f"{len(rows) - failed} line(s) read, {failed} unreadable -> {args.output}", file=sys.stderr)
    return 0


def inputs_and_predictor(args: argparse.Namespace) -> tuple[list[str], object]:
    """The image paths the inputs name and the predictor the model arguments ask for."""
    try:
        inputs = [p for target in args.inputs for p in collect_inputs(target)]
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    if not inputs:
        raise UsageError("no images found in the given inputs")
    from vihtr.inference.predictor import Predictor

    try:
        predictor = Predictor.from_release(
            args.models,
            device=args.device,
            threads=args.threads,
            method=args.method,
            beam_size=args.beam_size,
            batch_size=args.batch_size,
            backend=args.backend,
            domain=args.domain,
        )
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise UsageError(str(e)) from None
    return inputs, predictor


def run_pages(args: argparse.Namespace) -> int:
    if args.output and Path(args.output).suffix.lower() != ".json":
        raise UsageError(f"the pages' output is JSON (a .json file): {args.output}")
    inputs, predictor = inputs_and_predictor(args)

    from tqdm import tqdm

    from vihtr.inference.answers import page_json
    from vihtr.inference.pages import PageReader

    reader = PageReader(predictor)
    # TXT files mirror the inputs below their common folder: pages of the same name in two folders both keep theirs
    common = Path(os.path.commonpath([str(Path(p).resolve().parent) for p in inputs]))
    pages = []
    for path in tqdm(inputs, unit="page", disable=args.quiet or None, file=sys.stderr):
        result = reader.read(path)
        if result.error:
            tqdm.write(f"warning: {result.error}", file=sys.stderr)
        pages.append(page_json(result, predictor.review_below))
        pages[-1]["path"] = path
        if args.txt and not result.error:
            target = Path(args.txt) / Path(path).resolve().relative_to(common).with_suffix(".txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(result.text + "\n", encoding="utf-8")
    text = json.dumps(pages, ensure_ascii=False, indent=1) + "\n"
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        failed = sum(bool(p["error"]) for p in pages)
        lines = sum(len(p["lines"]) for p in pages)
        print(
            f"{len(pages) - failed} page(s) read ({lines} lines), {failed} unreadable -> {args.output}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


def run_import_corrections(args: argparse.Namespace) -> int:
    from vihtr.review.corrections import CorrectionError, CorrectionStore, import_table

    store = CorrectionStore(args.output)
    failed = 0
    for table in args.tables:
        try:
            report = import_table(table, store)
        except (OSError, CorrectionError, ValueError) as e:
            print(f"error: {table}: {e}", file=sys.stderr)
            return 2
        for error in report.errors:
            print(f"warning: {error}", file=sys.stderr)
        failed += len(report.errors)
        unreviewed = (
            f", {report.skipped_unreviewed} not checked left out" if report.skipped_unreviewed else ""
        )
        print(
            f"{table}: {report.saved} line(s) saved ({report.replaced} replaced an earlier text), "
            f"{len(report.errors)} refused{unreviewed}",
            file=sys.stderr,
        )
    print(f"{len(store)} line(s) in {store.labels}", file=sys.stderr)
    return 1 if failed else 0


def run_adapt(args: argparse.Namespace) -> int:
    from vihtr.inference.predictor import default_model_paths
    from vihtr.review.adapt import AdaptError, adapt

    bases = [args.model] if args.model else default_model_paths()
    if not bases:
        print("error: no released model found: pass --model", file=sys.stderr)
        return 2
    try:
        report = adapt(
            args.data, bases[0], args.out, steps=args.steps, held_out=args.held_out, seed=args.seed,
            threads=args.threads,
        )  # fmt: skip
    except (AdaptError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    verdict = "adapted" if report.improved else "kept the base model (adapting did not read them better)"
    print(
        f"{report.trained_on} lines trained on, {report.held_out} held out; {report.steps} steps in "
        f"{report.seconds:.0f} s. Held-out CER {100 * report.cer_before:.2f} % -> {100 * report.cer_after:.2f} %: "
        f"{verdict}. Release: {args.out} (report: {args.out}/adapt_report.json)",
        file=sys.stderr,
    )
    return 0


def run_export_onnx(args: argparse.Namespace) -> int:
    from vihtr.inference.onnx_export import export_release

    for model in args.models:
        # several models under one output root: a folder each, named as the release
        output = Path(args.output) / Path(model).name if args.output and len(args.models) > 1 else args.output
        try:
            files = export_release(model, output, check=not args.no_check)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for f in files:
            print(f)
    return 0


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Which models and how they decode: shared by `predict` and `serve`."""
    p.add_argument("--models", nargs="+", help="released model folders (default: the shipped models)")
    p.add_argument(
        "--method", choices=DECODE_METHODS, default=None, help="default: what the model recommends"
    )
    p.add_argument("--beam-size", type=int, default=4)
    p.add_argument(
        "--domain",
        choices=DOMAINS,
        default=None,
        help="what the lines say: 'prose' decodes with the Vietnamese syllable LM; 'address' with the "
        "address LM, then checks the unit names at the end against the administrative-unit list; 'auto' "
        "reads lines that end like an address as addresses and the others as prose; 'general' reads as "
        "the model does, with no LM (default: the release's, metadata.domain). The output's domain column "
        "says which read each line",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="auto (default): onnxruntime on a CPU where the models export (exported once into "
        "<model>/onnx/, then cached), else torch",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")


def add_predict_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="read text lines from images")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR|LIST.txt")
    p.add_argument("-o", "--output", help="out.csv, out.tsv or out.json (default: TSV on stdout)")
    add_model_arguments(p)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_predict)


def add_pages_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pages", help="read whole handwritten pages: find the lines, read them in order"
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE|DIR|LIST.txt")
    p.add_argument(
        "-o",
        "--output",
        help="out.json: one object per page (path, text, lines with box/text/confidence); default: stdout",
    )
    p.add_argument(
        "--txt",
        metavar="DIR",
        help="also write each page's text to DIR/<image name>.txt (sub-folders as given)",
    )
    add_model_arguments(p)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_pages)


def add_corrections_parser(subparsers) -> None:
    p = subparsers.add_parser("corrections", help="reviewed lines as a training set")
    actions = p.add_subparsers(dest="action", required=True)
    i = actions.add_parser(
        "import",
        help="save the lines of checked tables (a `vihtr predict` CSV/TSV/JSON whose texts you corrected, or "
        "the web page's export) as a training set: DIR/labels.tsv + DIR/images/",
    )
    i.add_argument(
        "tables", nargs="+", metavar="TABLE", help="CSV, TSV or JSON with `path` and `text` columns"
    )
    i.add_argument("-o", "--output", required=True, metavar="DIR", help="the training-set folder (added to)")
    i.set_defaults(func=run_import_corrections)


def add_adapt_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "adapt",
        help="fine-tune a release on your checked lines (folders with labels.tsv) into a new release",
    )
    p.add_argument("data", nargs="+", metavar="DIR", help="folders of checked lines (labels.tsv + images)")
    p.add_argument("--model", default=None, help="the release to start from (default: the shipped default)")
    p.add_argument("--out", required=True, help="the new release's folder")
    p.add_argument("--steps", type=int, default=150, help="training steps of 8 lines (default 150)")
    p.add_argument(
        "--held-out", type=float, default=0.2, help="share of the lines kept out to check the result"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.set_defaults(func=run_adapt)


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser("export-onnx", help="export a released model to ONNX (encoder + decoder step)")
    p.add_argument("models", nargs="+", metavar="MODEL", help="released model folders")
    p.add_argument(
        "-o",
        "--output",
        help="output folder (default: <model>/onnx; with several models, <output>/<model name>)",
    )
    p.add_argument("--no-check", action="store_true", help="skip comparing onnxruntime with torch")
    p.set_defaults(func=run_export_onnx)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vihtr", description="Vietnamese handwritten text-line recognition")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_predict_parser(subparsers)
    add_pages_parser(subparsers)
    add_corrections_parser(subparsers)
    add_adapt_parser(subparsers)
    add_export_parser(subparsers)
    lifecycle.add_parser(subparsers)
    for name in OPTIONAL_SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                # the part exists but a dependency is missing: say so, keep the other subcommands working
                print(f"warning: {name} not loaded ({e})", file=sys.stderr)
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
