"""Peak memory of the web app under the audit's worst request: 16 PNGs of 4470x4470 (20 Mpx each, ~0.3 MB).

    python scripts/memory_probe.py [MODEL_FOLDER]      (default: models/vihtr-lite1)

Serves the app in this process, sends the request once, and prints JSON with the resident memory before
(idle), the peak while serving, and after, in MB (Linux /proc). The request budget is raised so that all
16 images are decoded: the bound must come from decoding lazily and reducing early, not from refusing.
"""

from __future__ import annotations

import io
import json
import sys
import urllib.request
import uuid

from PIL import Image, ImageDraw

import vihtr  # noqa: F401  (torchvision fix before anything imports timm)
from vihtr.app.server import create_app
from vihtr.app.serving import start_in_thread

SIDE, FILES = 4470, 16


def rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def huge_request() -> tuple[bytes, str]:
    img = Image.new("L", (SIDE, SIDE), 255)
    ImageDraw.Draw(img).text((100, SIDE // 2), "Thôn 3 Xã Hòa Bình", fill=0)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    boundary = uuid.uuid4().hex
    head = 'Content-Disposition: form-data; name="images"; filename="{}.png"\r\n\r\n'
    body = b"".join(
        f"--{boundary}\r\n{head.format(i)}".encode() + buf.getvalue() + b"\r\n" for i in range(FILES)
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def main() -> int:
    model = sys.argv[1] if len(sys.argv) > 1 else "models/vihtr-lite1"
    body, content_type = huge_request()
    app = create_app(model_paths=[model], max_pixels=20_000_000, max_request_pixels=400_000_000, preload=True)
    running = start_in_thread(app)
    try:
        idle = rss_mb("VmRSS")
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset the peak (VmHWM) to the present
        request = urllib.request.Request(f"{running.url}/api/predict", data=body, method="POST")
        request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.load(response)
        peak, after = rss_mb("VmHWM"), rss_mb("VmRSS")
    finally:
        running.stop()
    errors = [p["error"] for p in answer["predictions"] if p.get("error")]
    report = {
        "idle_mb": idle,
        "peak_mb": peak,
        "after_mb": after,
        "lines": len(answer["predictions"]),
        "errors": errors,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
