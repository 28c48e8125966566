"""The web app over HTTP: the real server (waitress) on a free localhost port, a tiny real model, urllib calls."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

import vihtr
from vihtr.app.server import create_app
from vihtr.app.serving import start_in_thread

REPO_ROOT = Path(__file__).resolve().parents[1]
KALAPA = Path(os.environ.get("VIHTR_DATA_ROOT", REPO_ROOT.parent / "shared" / "data")) / "kalapa2023"
SHIPPED_SAMPLES = REPO_ROOT / "src" / "vihtr" / "app" / "samples"
MAX_FILES = 4
MAX_UPLOAD_MB = 1
MAX_PIXELS = 1_000_000


def make_tiny_release(folder: Path) -> Path:
    """A random, tiny but real released model (about 0.1 M parameters): fast to load and to run."""
    from vihtr.data.preprocess import Preprocess
    from vihtr.models.ocr import OCRModel
    from vihtr.models.release import save_release

    torch.manual_seed(0)
    model = OCRModel(
        backbone="test_efficientnet", d_model=32, decoder="transformer", decoder_layers=1, nhead=2,
        ffn_dim=64, max_len=12, ctc=False,
    )  # fmt: skip
    return save_release(model, folder, Preprocess(height=32, max_width=256))


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> Path:
    return make_tiny_release(tmp_path_factory.mktemp("release") / "tiny-model")


# the shipped default: a model that reads, so a swapped, misrouted or ignored image changes the answer
SHIPPED_DEFAULT = REPO_ROOT / "models" / "vihtr-lite1"


def sample_texts() -> dict[str, str]:
    """Each shipped sample's file name -> the text it was rendered from (vihtr.app.make_samples)."""
    from vihtr.app.make_samples import LINES

    return {f"sample-{i:02d}.png": text for i, (_, text) in enumerate(LINES, start=1)}


def cer(prediction: str, target: str) -> float:
    import editdistance

    return editdistance.eval(prediction, target) / max(1, len(target))


@pytest.fixture(scope="session")
def line_images() -> list[Path]:
    """Two real Kalapa lines when the data is here, else two of the samples shipped with the app."""
    real = sorted((KALAPA / "images").glob("*/*.jpg"))[:2]
    return real if len(real) == 2 else sorted(SHIPPED_SAMPLES.glob("*.png"))[:2]


@pytest.fixture(scope="module")
def server():
    app = create_app(
        model_paths=[str(SHIPPED_DEFAULT)],
        max_files=MAX_FILES,
        max_upload_mb=MAX_UPLOAD_MB,
        max_pixels=MAX_PIXELS,
    )
    running = start_in_thread(app)
    yield running.url
    running.stop()


def call(url: str, method: str = "GET", body: bytes | None = None, content_type: str | None = None):
    """-> (status, headers, body bytes); HTTP errors are answers too."""
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def call_json(url: str, method: str = "GET", body: bytes | None = None, content_type: str | None = None):
    """-> (status, answer); every answer of a documented route is checked against the served document."""
    status, headers, raw = call(url, method, body, content_type)
    assert headers.get_content_type() == "application/json", raw[:200]
    answer = json.loads(raw)
    check_documented(url, method, status, answer)
    return status, answer


def check_documented(url: str, method: str, status: int, answer) -> None:
    """The answer must be one the server's /openapi.json describes for that route: its status listed, its
    body valid under that status's schema (no key missing, none undocumented)."""
    import jsonschema

    parts = urllib.parse.urlsplit(url)
    if parts.path == "/openapi.json":
        return
    status_doc, _, raw = call(f"{parts.scheme}://{parts.netloc}/openapi.json")
    assert status_doc == 200
    spec = json.loads(raw)
    for template, operations in spec["paths"].items():
        pattern = "^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)) + "$"
        if re.match(pattern, parts.path) and method.lower() in operations:
            break
    else:
        return  # not a route of the API (an unknown path, a method it does not take)
    responses = operations[method.lower()]["responses"]
    assert str(status) in responses, f"{method} {parts.path} answered {status}: not in the document"
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": spec["components"]}).validate(answer)


def multipart(files: list[tuple[str, str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """[(field, filename, data)] -> (body, content type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (fields or {}).items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for field, filename, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_images(url: str, files: list[tuple[str, bytes]], field: str = "images"):
    body, content_type = multipart([(field, name, data) for name, data in files])
    return call_json(f"{url}/api/predict", "POST", body, content_type)


def png_bytes(size=(120, 32), color=255) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's header)."""
    data = bytearray(png_bytes((1, 1)))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def png_with_garbage_pixels() -> bytes:
    """A PNG with a valid header (signature + IHDR: 33 bytes) and a well-formed IDAT chunk of random bytes."""
    garbage = os.urandom(300)
    idat = (
        struct.pack(">I", len(garbage)) + b"IDAT" + garbage + struct.pack(">I", zlib.crc32(b"IDAT" + garbage))
    )
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return png_bytes((64, 64))[:33] + idat + iend


def assert_still_up(url: str) -> None:
    status, health = call_json(f"{url}/health")
    assert status == 200 and health["status"] == "ok"


def test_the_samples_read_as_their_own_texts_in_the_order_sent(server):
    """Four different lines in one request: each answer is near its own text and far from the others', so an
    image swapped, misrouted, ignored or read twice fails."""
    texts = sample_texts()
    for names in (sorted(texts)[:4], sorted(texts)[2:][::-1]):
        status, body = post_images(server, [(n, (SHIPPED_SAMPLES / n).read_bytes()) for n in names])
        assert status == 200, body
        assert [p["name"] for p in body["predictions"]] == names
        read = [p["text"] for p in body["predictions"]]
        assert len(set(read)) == len(read)
        for name, text in zip(names, read):
            assert cer(text, texts[name]) < 0.15, (name, text, texts[name])
            assert all(cer(text, texts[other]) > 0.5 for other in names if other != name)


def test_predict_one_and_two_images_match_the_predictor(server, line_images):
    from vihtr.inference.predictor import Predictor

    expected = Predictor.from_release(str(SHIPPED_DEFAULT)).predict([str(p) for p in line_images])
    assert expected[0].text != expected[1].text and all(len(p.text) > 5 for p in expected)
    for count in (1, 2):
        files = [(p.name, p.read_bytes()) for p in line_images[:count]]
        status, body = post_images(server, files)
        assert status == 200, body
        assert body["model"] == [SHIPPED_DEFAULT.name]
        assert body["total_ms"] > 0
        assert [p["name"] for p in body["predictions"]] == [p.name for p in line_images[:count]]
        for prediction, want in zip(body["predictions"], expected):
            assert prediction["text"] == want.text
            assert prediction["confidence"] == pytest.approx(want.confidence, abs=1e-3)
            assert 0.0 <= prediction["confidence"] <= 1.0
            assert len(prediction["char_confidences"]) == len(prediction["text"])
            assert prediction["ms"] > 0
            # the default domain is auto: each line says whether it was read as an address or as prose
            assert prediction["domain"] == want.domain and want.domain in ("address", "prose")
            review_below = json.loads((SHIPPED_DEFAULT / "config.json").read_text())["metadata"][
                "calibration"
            ]["review_below"]
            assert prediction["review"] == (prediction["confidence"] < review_below)


def stacked_page(names: list[str]) -> bytes:
    """A page of the shipped sample lines, one under the other with a gap, as a JPEG."""
    lines = [Image.open(SHIPPED_SAMPLES / name).convert("RGB") for name in names]
    page = Image.new(
        "RGB", (max(i.width for i in lines) + 80, sum(i.height + 30 for i in lines) + 60), "white"
    )
    y = 40
    for line in lines:
        page.paste(line, (40, y))
        y += line.height + 30
    buffer = io.BytesIO()
    page.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_a_page_reads_line_by_line_top_to_bottom(server):
    texts = sample_texts()
    names = sorted(texts)[:3]
    body, content_type = multipart([("images", "page.jpg", stacked_page(names))])
    status, answer = call_json(f"{server}/api/pages", "POST", body, content_type)
    assert status == 200, answer
    (page,) = answer["pages"]
    assert page["name"] == "page.jpg" and len(page["lines"]) == 3
    assert page["text"] == "\n".join(line["text"] for line in page["lines"])
    for line, name in zip(page["lines"], names):  # in order: each line near its own sample's text
        assert cer(line["text"], texts[name]) < 0.2, (line["text"], texts[name])
        assert 0 <= line["confidence"] <= 1 and isinstance(line["review"], bool)
    tops = [line["box"][1] for line in page["lines"]]
    assert tops == sorted(tops) and all(
        0 <= v <= max(page["width"], page["height"]) for line in page["lines"] for v in line["box"]
    )
    # the same page sent as one line is read, but flagged and not trusted
    status, read = post_images(server, [("page.jpg", stacked_page(names))])
    (prediction,) = read["predictions"]
    assert (
        prediction["review"] is True and prediction["confidence"] == 0 and "3 lines" in prediction["warning"]
    )


def test_pages_answer_bad_input_clearly(server):
    blank = io.BytesIO()
    Image.new("RGB", (600, 400), "white").save(blank, format="PNG")
    body, content_type = multipart(
        [("images", "blank.png", blank.getvalue()), ("images", "bad.jpg", b"nope")]
    )
    status, answer = call_json(f"{server}/api/pages", "POST", body, content_type)
    assert status == 200, answer  # one page read (no lines on it), one refused with its reason
    assert answer["pages"][0]["lines"] == [] and answer["pages"][0]["text"] == ""
    assert "not an image" in answer["pages"][1]["error"]
    body, content_type = multipart([("images", f"p{i}.png", blank.getvalue()) for i in range(5)])
    status, answer = call_json(f"{server}/api/pages", "POST", body, content_type)
    assert status == 413 and "at most 4" in answer["error"]
    status, answer = call_json(f"{server}/api/pages", "POST", b"x", "text/plain")
    assert status == 415


def test_predict_accepts_the_single_image_field(server, line_images):
    status, body = post_images(server, [("line.jpg", line_images[0].read_bytes())], field="image")
    assert status == 200 and len(body["predictions"]) == 1


def test_health_reports_models_and_version(server, line_images):
    post_images(server, [("line", line_images[0].read_bytes())])  # the models load at the first prediction
    status, health = call_json(f"{server}/health")
    assert status == 200
    metadata = json.loads((SHIPPED_DEFAULT / "config.json").read_text())["metadata"]
    assert health == {
        "status": "ok",
        "models_loaded": True,
        "model": [SHIPPED_DEFAULT.name],
        "model_error": "",
        "version": vihtr.__version__,
        "limits": {
            "max_files": MAX_FILES,
            "max_upload_mb": MAX_UPLOAD_MB,
            "max_pixels": MAX_PIXELS,
            "max_request_pixels": 4 * MAX_PIXELS,
        },
        "confidence": {"calibrated": True, "review_below": metadata["calibration"]["review_below"]},
        "domain": metadata["domain"],
        "domains": ["general", "prose", "address", "auto"],
        "corrections": False,
    }


def test_openapi_lists_every_route(server, tiny_release):
    status, spec = call_json(f"{server}/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    app = create_app(model_paths=[str(tiny_release)])
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], f"{path} missing from openapi.json"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], f"{method} {path} missing from openapi.json"


def test_the_document_check_refuses_answers_the_document_does_not_describe(server):
    """`call_json` checks every answer against /openapi.json; here it must catch a key added, a key missing,
    a wrong type and an unlisted status."""
    import jsonschema

    status, health = call_json(f"{server}/health")
    for changed in (
        {**health, "uptime": 3},
        {k: v for k, v in health.items() if k != "limits"},
        {**health, "models_loaded": "yes"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check_documented(f"{server}/health", "GET", 200, changed)
    with pytest.raises(AssertionError, match="not in the document"):
        check_documented(f"{server}/health", "GET", 404, {"error": "gone"})
    status, answer = post_images(server, [("line", png_bytes())])
    prediction = answer["predictions"][0]
    with pytest.raises(jsonschema.ValidationError):  # a prediction's keys are documented one by one
        check_documented(
            f"{server}/api/predict", "POST", 200, {**answer, "predictions": [{**prediction, "score": 1}]}
        )


def test_page_is_served_with_its_controls_and_safe_headers(server):
    status, headers, html = call(f"{server}/")
    assert status == 200 and headers.get_content_type() == "text/html"
    for element_id in ("get-images", "predict", "file-input", "drop-zone", "images", "status"):
        assert f'id="{element_id}"' in html.decode()
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("/static/app.js", "/static/style.css"):
        assert call(f"{server}{asset}")[0] == 200


def test_samples_are_distinct_and_served(server):
    status, body = call_json(f"{server}/api/samples?n=3")
    assert status == 200
    names = [s["name"] for s in body["samples"]]
    assert len(names) == 3 and len(set(names)) == 3
    for sample in body["samples"]:
        status, _, data = call(f"{server}{sample['url']}")
        assert status == 200
        assert data == (SHIPPED_SAMPLES / sample["name"]).read_bytes()


@pytest.mark.parametrize("query", ["n=0", "n=abc", "n=999", "n=-2"])
def test_samples_reject_a_bad_count(server, query):
    status, body = call_json(f"{server}/api/samples?{query}")
    assert status == 400 and "n must" in body["error"]


TRAVERSALS = [
    "../server.py",
    "../../../../etc/passwd",
    "%2e%2e/server.py",
    "%2e%2e%2fserver.py",
    "..%2f..%2fapp%2fserver.py",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "sample-01.png/../../server.py",
    "..\\server.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_samples_never_leave_their_folder(server, path):
    status, _, body = call(f"{server}/api/samples/{path}")
    assert 400 <= status < 500
    assert b"root:" not in body and b"create_app" not in body
    assert json.loads(body)["error"]


def test_symlinks_out_of_the_samples_folder_are_not_served(tmp_path, tiny_release):
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(png_bytes())
    samples = tmp_path / "samples"
    (samples / "writer").mkdir(parents=True)
    (samples / "writer" / "0.png").write_bytes(png_bytes())
    (samples / "link.png").symlink_to(secret)
    (samples / "linked-dir").symlink_to(secret.parent, target_is_directory=True)
    running = start_in_thread(create_app(model_paths=[str(tiny_release)], samples_dir=samples))
    try:
        status, body = call_json(f"{running.url}/api/samples?n=5")
        assert [s["name"] for s in body["samples"]] == ["writer/0.png"]
        assert call(f"{running.url}/api/samples/writer/0.png")[0] == 200
        for name in ("link.png", "linked-dir/secret.png"):
            assert call(f"{running.url}/api/samples/{name}")[0] == 404
    finally:
        running.stop()


def bad_requests(line_image: bytes):
    big = os.urandom(int(MAX_UPLOAD_MB * 1024 * 1024 * 1.5))
    return {
        "non-image file": (
            400,
            *multipart([("images", "notes.png", b"just some text, not an image\n" * 20)]),
        ),
        "not an image format": (
            400,
            *multipart([("images", "x.png", b"\x89PNG\r\n\x1a\n" + os.urandom(300))]),
        ),
        "corrupt image": (400, *multipart([("images", "x.png", png_with_garbage_pixels())])),
        "truncated image": (400, *multipart([("images", "cut.jpg", line_image[: len(line_image) // 2])])),
        "empty upload": (400, *multipart([("images", "empty.png", b"")])),
        "no files": (400, *multipart([], fields={"note": "hello"})),
        "unsupported format": (400, *multipart([("images", "x.ppm", b"P5 4 4 255\n" + bytes(16))])),
        "too many files": (
            413,
            *multipart([("images", f"{i}.png", png_bytes()) for i in range(MAX_FILES + 1)]),
        ),
        "body over the size limit": (413, *multipart([("images", "big.png", big)])),
        "pixel bomb header": (413, *multipart([("images", "bomb.png", png_claiming_size(50_000, 50_000))])),
        "over the pixel limit": (413, *multipart([("images", "wide.png", png_bytes((2000, 600)))])),
        "json body": (415, json.dumps({"images": []}).encode(), "application/json"),
        "raw image body": (415, line_image, "image/jpeg"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "non-image file", "not an image format", "corrupt image", "truncated image", "empty upload", "no files", "unsupported format",
        "too many files", "body over the size limit", "pixel bomb header", "over the pixel limit",
        "json body", "raw image body",
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_json_error(server, line_images, case):
    status, body, content_type = bad_requests(line_images[0].read_bytes())[case]
    got, answer = call_json(f"{server}/api/predict", "POST", body, content_type)
    assert got == status, answer
    assert isinstance(answer["error"], str) and len(answer["error"]) > 10
    assert_still_up(server)


def test_unknown_route_and_wrong_method_answer_json(server):
    status, body = call_json(f"{server}/no/such/page")
    assert status == 404 and "/no/such/page" in body["error"]
    status, headers, raw = call(f"{server}/api/predict")
    assert status == 405 and json.loads(raw)["error"]
    assert "POST" in headers["Allow"]
    assert_still_up(server)


class FailingPredictor:
    """Stands in for a predictor with a bug."""

    def predict(self, images):
        raise RuntimeError("boom")


def test_a_server_error_is_json_logged_and_survived(caplog, line_images):
    running = start_in_thread(create_app(predictor=FailingPredictor()))
    try:
        status, body = post_images(running.url, [("line.jpg", line_images[0].read_bytes())])
        assert status == 500 and "boom" not in body["error"] and "not your input" in body["error"]
        assert body["reference"] in body["error"]  # the user can quote it; the log has it
        assert any(body["reference"] in r.getMessage() and r.exc_info for r in caplog.records)
        assert_still_up(running.url)
    finally:
        running.stop()


def test_models_that_cannot_load_answer_503(tmp_path, line_images):
    running = start_in_thread(create_app(model_paths=[str(tmp_path / "missing-model")]))
    try:
        status, body = post_images(running.url, [("line.jpg", line_images[0].read_bytes())])
        assert status == 503 and "missing-model" in body["error"]
        status, health = call_json(f"{running.url}/health")
        assert status == 200 and health["models_loaded"] is False and "missing-model" in health["model_error"]
        assert str(tmp_path) not in health["model_error"] and str(tmp_path) not in body["error"]
    finally:
        running.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_subcommand_is_registered():
    from vihtr.app import cli as app_cli
    from vihtr.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "9999", "--samples-dir", "/tmp"])
    assert args.func is app_cli.run and args.port == 9999 and args.samples_dir == "/tmp"


def test_python_m_vihtr_app_starts_and_serves(tiny_release, line_images):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "vihtr.app",
        "--port",
        str(port),
        "--models",
        str(tiny_release),
        "--threads",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = call_json(f"{url}/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.2)
        assert status == 200 and health["models_loaded"] is True  # loaded at start, not lazily
        status, body = post_images(url, [(line_images[0].name, line_images[0].read_bytes())])
        assert status == 200 and len(body["predictions"]) == 1
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_one_bad_file_gets_its_own_error_and_the_others_are_read(server, line_images):
    from vihtr.inference.predictor import Predictor

    good = [p.read_bytes() for p in line_images]
    expected = Predictor.from_release(str(SHIPPED_DEFAULT)).predict(good)
    files = [
        ("a.jpg", good[0]),
        ("corrupt.png", png_with_garbage_pixels()),
        ("huge.png", png_bytes((2000, 600))),
        ("notes.txt", b"not an image"),
    ]
    status, body = post_images(server, files)
    assert status == 200, body
    a, corrupt, huge, notes = body["predictions"]
    assert a["text"] == expected[0].text and "error" not in a
    assert corrupt["error"].startswith("corrupt.png: ") and corrupt["text"] == ""
    assert "over the limit" in huge["error"] and "not an image" in notes["error"]


def test_a_request_is_held_to_a_pixel_budget(tiny_release, line_images):
    running = start_in_thread(create_app(model_paths=[str(tiny_release)], max_pixels=100_000, max_files=8))
    try:
        files = [(f"{i}.png", png_bytes((300, 300))) for i in range(6)]  # 90,000 px each, 400,000 per request
        status, body = post_images(running.url, files)
        assert status == 200
        errors = ["pixel budget" in p.get("error", "") for p in body["predictions"]]
        assert errors == [False] * 4 + [True] * 2
    finally:
        running.stop()


def test_many_form_fields_are_refused_as_such(server):
    body, content_type = multipart([], fields={f"f{i}": "x" for i in range(5000)})
    status, answer = call_json(f"{server}/api/predict", "POST", body, content_type)
    assert status == 413 and "too many form parts" in answer["error"]


def test_a_file_name_with_a_line_break_gets_a_clear_answer(server, line_images):
    data = line_images[0].read_bytes()
    body, content_type = multipart([("images", "a\r\nb.jpg", data)])
    status, answer = call_json(f"{server}/api/predict", "POST", body, content_type)
    assert status == 400 and "line break" in answer["error"]
    body, content_type = multipart(
        [("images", "a\tb\u2028.jpg", data)]
    )  # control characters in a valid header
    status, answer = call_json(f"{server}/api/predict", "POST", body, content_type)
    assert status == 200 and answer["predictions"][0]["name"] == "ab.jpg"


def test_favicon_is_served(server):
    status, headers, body = call(f"{server}/favicon.ico")
    assert status == 200 and headers.get_content_type() == "image/svg+xml" and body.startswith(b"<svg")


class CountingPredictor:
    """Records the batch of each call; slow enough that concurrent requests queue up behind one another."""

    def __init__(self):
        self.calls: list[int] = []

    def predict(self, images):
        from vihtr.inference.types import Prediction

        self.calls.append(len(images))
        time.sleep(0.2)
        return [Prediction(text=str(len(image)), confidence=1.0) for image in images]


@pytest.mark.parametrize("batch_lines", [32, 1])
def test_concurrent_requests_share_forward_passes(line_images, batch_lines):
    """Concurrent requests are read together, up to `batch_lines` lines a call (1: one at a time)."""
    import threading

    predictor = CountingPredictor()
    running = start_in_thread(create_app(predictor=predictor, batch_lines=batch_lines))
    try:
        sizes = [len(png_bytes((100 + 10 * i, 32))) for i in range(12)]
        answers: dict[int, dict] = {}

        def client(i):
            answers[i] = post_images(running.url, [(f"{i}.png", png_bytes((100 + 10 * i, 32)))])[1]

        threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(answers) == list(range(12))
        for i, answer in answers.items():  # each request got its own line back
            assert answer["predictions"][0]["text"] == str(sizes[i])
        assert sum(predictor.calls) == 12
        if batch_lines == 1:
            assert predictor.calls == [1] * 12
        else:
            assert len(predictor.calls) < 12 and max(predictor.calls) > 1
    finally:
        running.stop()


def test_idle_connections_do_not_lock_others_out(server):
    # more idle connections than waitress's default limit (100): the server still answers at once
    idle = [socket.create_connection(("127.0.0.1", int(server.rsplit(":", 1)[1]))) for _ in range(150)]
    try:
        t0 = time.monotonic()
        assert_still_up(server)
        assert time.monotonic() - t0 < 5
    finally:
        for s in idle:
            s.close()


def test_connections_over_the_limit_are_dropped_when_idle(tiny_release):
    running = start_in_thread(
        create_app(model_paths=[str(tiny_release)]), connection_limit=10, channel_timeout=2
    )
    port = int(running.url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        t0 = time.monotonic()
        assert_still_up(running.url)  # waits in the backlog until idle ones time out
        assert time.monotonic() - t0 < 15
    finally:
        for s in idle:
            s.close()
        running.stop()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to read peak RSS")
def test_a_request_of_huge_images_stays_within_its_memory_budget(tiny_release):
    """The audit's worst request: 16 PNGs of 4470x4470 (20 Mpx each). Before: +1.3 GB, never returned."""
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "memory_probe.py"), str(tiny_release)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["lines"] == 16 and not m["errors"], m
    assert m["peak_mb"] - m["idle_mb"] < 300, m  # above idle while serving it
    assert m["after_mb"] - m["idle_mb"] < 100, m  # and it goes back


class DomainPredictor(CountingPredictor):
    """Records the domain of each call too; reads every line as its domain's name."""

    domain = "general"

    def __init__(self):
        super().__init__()
        self.domains: list[str] = []

    def predict(self, images, domain=None):
        from vihtr.inference.types import Prediction

        domain = domain or self.domain
        self.calls.append(len(images))
        self.domains.append(domain)
        time.sleep(0.2)
        return [Prediction(text=domain, confidence=1.0) for _ in images]


def test_each_request_is_read_in_its_domain_and_domains_never_share_a_batch():
    import threading

    predictor = DomainPredictor()
    running = start_in_thread(create_app(predictor=predictor))
    try:
        answers: dict[int, dict] = {}

        def client(i):
            domain = ("address", "general", "")[i % 3]
            answers[i] = post_images_with_fields(running.url, {"domain": domain} if domain else {})[1]

        threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for i, answer in answers.items():
            expected = ("address", "general", "general")[i % 3]  # no field: the model's default
            assert answer["domain"] == expected and answer["predictions"][0]["text"] == expected
        assert sorted(answers) == list(range(12)) and len(predictor.calls) < 12  # still batched
        status, body = post_images_with_fields(running.url, {"domain": "poetry"})
        assert status == 400 and "domain must be one of" in body["error"]
        assert call_json(f"{running.url}/health")[1]["domain"] == "general"
    finally:
        running.stop()


def post_images_with_fields(url: str, fields: dict[str, str]):
    body, content_type = multipart([("images", "line.png", png_bytes())], fields)
    return call_json(f"{url}/api/predict", "POST", body, content_type)
