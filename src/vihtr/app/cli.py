"""Start the web app: `python -m vihtr.app ...` or `vihtr serve ...` (same options).

python -m vihtr.app --port 8000 --samples-dir ../shared/data/kalapa2023/public_test
vihtr serve --models models/vihtr-lite1 models/extra/vihtr-lite1-fast --host 0.0.0.0
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from vihtr.app.batching import BATCH_LINES
from vihtr.app.serving import CHANNEL_TIMEOUT_S, CONNECTION_LIMIT, SERVER_THREADS, SERVERS
from vihtr.cli import add_model_arguments

SAMPLES_ENV = "VIHTR_SAMPLES_DIR"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--samples-dir",
        default=os.environ.get(SAMPLES_ENV),
        help=f"folder of line images for 'Get Images' (default: ${SAMPLES_ENV}, else the samples shipped with the app)",
    )
    add_model_arguments(p)
    p.add_argument("--max-files", type=int, default=16, help="images per request")
    p.add_argument("--max-upload-mb", type=float, default=10, help="request body size")
    p.add_argument("--max-pixels", type=int, default=None, help="pixels per image (default: 40 million)")
    p.add_argument(
        "--max-request-pixels", type=int, default=None, help="pixels per request (default: 4 x --max-pixels)"
    )
    p.add_argument(
        "--server", choices=SERVERS, default="auto", help="auto: waitress when installed, else Flask's"
    )
    p.add_argument(
        "--server-threads",
        type=int,
        default=SERVER_THREADS,
        help="waitress worker threads (they wait on the batch queue)",
    )
    p.add_argument("--connection-limit", type=int, default=CONNECTION_LIMIT, help="open connections at most")
    p.add_argument(
        "--channel-timeout",
        type=float,
        default=CHANNEL_TIMEOUT_S,
        help="seconds before an idle connection is closed",
    )
    p.add_argument(
        "--batch-lines",
        type=int,
        default=BATCH_LINES,
        help="lines of concurrent requests read together at most (1: one request at a time)",
    )
    p.add_argument("--lazy", action="store_true", help="load the models at the first request, not at start")
    p.add_argument(
        "--corrections-dir",
        default=None,
        help="save the lines reviewed on the page (image + checked text) here as a training set "
        "(labels.tsv + images/, the folder layout training reads); off by default",
    )


def add_parser(subparsers) -> None:
    """Add the `serve` subcommand to the `vihtr` command."""
    p = subparsers.add_parser("serve", help="start the web app (page + JSON API)")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from werkzeug.exceptions import ServiceUnavailable

    from vihtr.app.server import create_app
    from vihtr.app.serving import serve
    from vihtr.data.preprocess import DEFAULT_MAX_PIXELS

    options = {
        "device": args.device,
        "threads": args.threads,
        "method": args.method,
        "beam_size": args.beam_size,
        "backend": args.backend,
        "domain": args.domain,
    }
    try:
        app = create_app(
            model_paths=args.models,
            samples_dir=args.samples_dir,
            max_files=args.max_files,
            max_upload_mb=args.max_upload_mb,
            max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
            max_request_pixels=args.max_request_pixels,
            predictor_options=options,
            preload=not args.lazy,
            batch_lines=args.batch_lines,
            corrections_dir=args.corrections_dir,
        )
    except ServiceUnavailable as e:
        print(f"error: {e.description}", file=sys.stderr)
        return 2
    print(f"vihtr web app on http://{args.host}:{args.port}/ (Ctrl+C stops it)", file=sys.stderr)
    serve(
        app,
        args.host,
        args.port,
        threads=args.server_threads,
        server=args.server,
        connection_limit=args.connection_limit,
        channel_timeout=args.channel_timeout,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    parser = argparse.ArgumentParser(prog="python -m vihtr.app", description="the vihtr web app")
    add_arguments(parser)
    return run(parser.parse_args(argv))
