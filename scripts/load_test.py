"""Load a running vihtr web app: N concurrent clients each send M prediction requests (localhost only).

    python -m vihtr.app --port 8000 &
    python scripts/load_test.py --url http://127.0.0.1:8000 --clients 50 --requests 20

Reports errors, latency percentiles and throughput. Images: the given files, else the app's samples.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "vihtr" / "app" / "samples"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def multipart(files: list[Path]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{f.name}"\r\n\r\n'.encode()
        + f.read_bytes()
        + b"\r\n"
        for f in files
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def client(
    host: str,
    port: int,
    bodies: list[tuple[bytes, str]],
    requests: int,
    results: list,
    start: threading.Event,
):
    """One client on one keep-alive connection: `requests` POSTs, each (latency s, status or error name)."""
    connection = http.client.HTTPConnection(host, port, timeout=120)
    start.wait()
    for i in range(requests):
        body, content_type = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        try:
            connection.request("POST", "/api/predict", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            payload = response.read()
            outcome = response.status
            if response.status == 200 and "predictions" not in json.loads(payload):
                outcome = "bad-json"
        except (OSError, http.client.HTTPException, ValueError) as e:
            outcome = type(e).__name__
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=120)
        results.append((time.perf_counter() - t0, outcome))
    connection.close()


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(q / 100 * (len(sorted_values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--images-per-request", type=int, default=1)
    parser.add_argument(
        "images", nargs="*", type=Path, help="line images to send (default: the app's samples)"
    )
    args = parser.parse_args()

    url = urlsplit(args.url)
    if url.hostname not in LOCAL_HOSTS:
        print(f"error: load tests only run against localhost, not {url.hostname}", file=sys.stderr)
        return 2
    images = args.images or sorted(SAMPLES.glob("*.png"))
    k = args.images_per_request
    bodies = [multipart([images[(i + j) % len(images)] for j in range(k)]) for i in range(len(images))]

    results: list = []
    start = threading.Event()
    threads = [
        threading.Thread(
            target=client, args=(url.hostname, url.port or 80, bodies, args.requests, results, start)
        )
        for _ in range(args.clients)
    ]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0

    outcomes = Counter(outcome for _, outcome in results)
    ok = sorted(latency * 1000 for latency, outcome in results if outcome == 200)
    errors = {str(k): v for k, v in outcomes.items() if k != 200}
    print(
        f"{len(results)} requests ({args.clients} clients x {args.requests}, {k} image(s) each) in {wall:.1f} s"
    )
    print(f"errors: {sum(errors.values())} {errors if errors else ''}")
    if ok:
        print(
            f"latency ms: p50 {percentile(ok, 50):.0f}  p95 {percentile(ok, 95):.0f}  p99 {percentile(ok, 99):.0f}  "
            f"max {ok[-1]:.0f}  mean {statistics.mean(ok):.0f}"
        )
    print(f"throughput: {len(ok) / wall:.1f} requests/s, {len(ok) * k / wall:.1f} lines/s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
