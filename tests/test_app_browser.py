"""The page in headless Chromium: Get Images shows 3 samples, Predict shows what the API reads for them.

Needs the Debian packages `chromium` and `chromium-driver` (scripts/install_chromium.sh); skipped without
them. Set VIHTR_SCREENSHOTS=<folder> to keep a screenshot of the page after a prediction.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
import uuid
from pathlib import Path

import pytest

from vihtr.app.server import create_app
from vihtr.app.serving import start_in_thread

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SAMPLES = REPO_ROOT / "src" / "vihtr" / "app" / "samples"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromedriver not installed (run scripts/install_chromium.sh)",
)


@pytest.fixture(scope="module")
def corrections(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corrections")


@pytest.fixture(scope="module")
def server(corrections):
    # the shipped default, a model that reads: each sample's text must come back beside its own image
    app = create_app(model_paths=[str(REPO_ROOT / "models" / "vihtr-lite1")], corrections_dir=corrections)
    running = start_in_thread(app)
    yield running.url
    running.stop()


def near(prediction: str, target: str) -> bool:
    import editdistance

    return editdistance.eval(prediction, target) / max(1, len(target)) < 0.15


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1200,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def api_texts(url: str, names: list[str]) -> list[str]:
    """What /api/predict reads for the shipped samples of these names."""
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{name}"\r\n\r\n'.encode()
            + (SHIPPED_SAMPLES / name).read_bytes()
            + b"\r\n"
            for name in names
        )
        + f"--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(f"{url}/api/predict", data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return [p["text"] for p in json.load(response)["predictions"]]


def test_get_images_then_predict_shows_the_api_texts(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    wait.until(lambda d: "Model:" in d.find_element(By.ID, "model-info").text)

    browser.find_element(By.ID, "get-images").click()
    loaded = "return [...document.querySelectorAll('img.line-image')].filter(i => i.complete && i.naturalWidth > 0).length"
    wait.until(lambda d: d.execute_script(loaded) == 3)
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".image-name")]
    assert len(set(names)) == 3 and all((SHIPPED_SAMPLES / n).is_file() for n in names)
    assert all(img.get_attribute("alt") for img in browser.find_elements(By.CSS_SELECTOR, "img.line-image"))

    browser.find_element(By.ID, "predict").click()
    shown = "return [...document.querySelectorAll('.result')].filter(r => !r.hidden).length"
    wait.until(lambda d: d.execute_script(shown) == 3)
    assert sorted(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".image-name")) == sorted(names)
    names = [
        e.text for e in browser.find_elements(By.CSS_SELECTOR, ".image-name")
    ]  # flagged lines move first
    texts = browser.execute_script(
        "return [...document.querySelectorAll('.prediction-text')].map(e => e.textContent)"
    )
    assert texts == api_texts(server, names)
    # each card shows its own image's text: the texts the samples were rendered from (vihtr.app.make_samples)
    from vihtr.app.make_samples import LINES

    rendered = {f"sample-{i:02d}.png": text for i, (_, text) in enumerate(LINES, start=1)}
    assert all(near(text, rendered[name]) for name, text in zip(names, texts)), list(zip(names, texts))
    confidences = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".prediction-confidence")]
    assert all(c.endswith("%") for c in confidences)
    # the default domain (auto) chose per line, and each card says which
    read_as = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".prediction-domain")]
    assert len(read_as) == 3 and set(read_as) <= {"an address", "prose"}, read_as
    assert "Read 3 line(s)" in browser.find_element(By.ID, "status").text

    screenshot_dir = Path(os.environ.get("VIHTR_SCREENSHOTS", tmp_path))
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot_dir / "app-predicted.png"))


def test_an_uploaded_image_is_added_and_read(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    sample = SHIPPED_SAMPLES / "sample-05.png"
    browser.find_element(By.ID, "file-input").send_keys(str(sample))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 1)
    assert browser.find_element(By.CSS_SELECTOR, ".image-name").text == sample.name
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: d.execute_script("return !document.querySelector('.result').hidden"))
    text = browser.execute_script("return document.querySelector('.prediction-text').textContent")
    assert text == api_texts(server, [sample.name])[0]
    assert near(text, "Xóm Trại Thuỷ Nguyên Hải Phòng")

    # the domain the page shows is the one the server read in: the model's default, then the chosen one
    default = "addresses or prose, line by line"  # the shipped default reads in the auto domain
    assert f"as {default}" in browser.find_element(By.ID, "status").text
    assert f"({default})" in browser.find_element(By.CSS_SELECTOR, "#domain option[value='']").text
    browser.execute_script("document.querySelector('#domain').value = 'address'")
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: "as addresses." in d.find_element(By.ID, "status").text)
    assert browser.find_element(By.CSS_SELECTOR, ".prediction-domain").text == "an address"
    browser.execute_script("document.querySelector('#domain').value = 'prose'")
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: "as prose." in d.find_element(By.ID, "status").text)
    assert browser.find_element(By.CSS_SELECTOR, ".prediction-domain").text == "prose"


def test_a_corrupt_upload_shows_its_error_beside_the_lines_that_read(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)  # a PNG signature, then garbage
    good = SHIPPED_SAMPLES / "sample-03.png"
    browser.find_element(By.ID, "file-input").send_keys(f"{corrupt}\n{good}")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 2)
    # no broken-image icon: the card says the file cannot be shown
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".image-unviewable"))
    browser.find_element(By.ID, "predict").click()
    shown = "return [...document.querySelectorAll('.result')].filter(r => !r.hidden).length"
    wait.until(lambda d: d.execute_script(shown) == 2)
    texts = browser.execute_script(
        "return [...document.querySelectorAll('.prediction-text')].map(e => e.textContent)"
    )
    assert texts[0].startswith("corrupt.png: ") and "not an image" in texts[0]
    assert texts[1] == api_texts(server, [good.name])[0]
    assert "1 file(s) could not be read" in browser.find_element(By.ID, "status").text


def test_review_correct_a_flagged_line_save_it_and_export(server, browser, corrections):
    """Every line flagged (threshold raised for the test): the first is focused, a typed correction and Enter
    save it on the server, focus moves on, Tab skips to the next line to check, Enter accepts it unchanged;
    the CSV export holds the checked texts and each line's status."""
    import csv

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from vihtr.data.sources.real import LineFolderSource

    wait = WebDriverWait(browser, 30)
    browser.get(server + "/")
    wait.until(lambda d: "Model:" in d.find_element(By.ID, "model-info").text)
    browser.execute_script("state.reviewBelow = 1.01")  # every line under the threshold
    samples = [SHIPPED_SAMPLES / f"sample-0{i}.png" for i in (1, 2, 3)]
    browser.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in samples))
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 3)
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: "3 to check" in d.find_element(By.ID, "status").text)
    inputs = browser.find_elements(By.CSS_SELECTOR, ".correction")
    assert browser.switch_to.active_element == inputs[0]
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".image-name")]

    corrected = (
        "Xóm Trại Thuỷ Nguyên Hải Phòng"  # typed with its tone marks, as a Vietnamese keyboard sends them
    )
    inputs[0].clear()
    inputs[0].send_keys(corrected, Keys.ENTER)
    statuses = "return [...document.querySelectorAll('.review-status')].map(e => e.textContent)"
    wait.until(lambda d: d.execute_script(statuses)[0].startswith("corrected, saved"))
    assert browser.switch_to.active_element == inputs[1]  # on to the next line to check
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element == inputs[2]  # Tab: the next line to check, not the buttons
    read_third = inputs[2].get_attribute("value")
    inputs[2].send_keys(Keys.ENTER)
    wait.until(lambda d: d.execute_script(statuses)[2].startswith("accepted, saved"))

    saved = LineFolderSource(corrections, name="corrections")
    by_image = {(corrections / key).read_bytes(): text for key, text in zip(saved.keys, saved.texts)}
    assert by_image[(SHIPPED_SAMPLES / names[0]).read_bytes()] == corrected
    assert by_image[(SHIPPED_SAMPLES / names[2]).read_bytes()] == read_third
    assert len(by_image) == 2

    # keep the Blob the page downloads (the page's security policy lets no script fetch a blob: URL)
    browser.execute_script(
        "window.exported = []; const make = URL.createObjectURL;"
        "URL.createObjectURL = (blob) => { window.exported.push(blob); return make(blob); };"
    )
    browser.find_element(By.ID, "export-csv").click()
    exported = browser.execute_async_script(
        "const done = arguments[0]; window.exported.at(-1).text().then(done, (e) => done(`failed: ${e}`));"
    )
    rows = list(csv.DictReader(exported.splitlines()))
    assert [r["name"] for r in rows] == names
    assert [r["status"] for r in rows] == ["corrected", "unreviewed", "accepted"]
    assert rows[0]["text"] == corrected and rows[0]["read"] != corrected and rows[0]["review"] == "true"
    assert "Exported 3 line(s) as CSV, 2 of them checked" in browser.find_element(By.ID, "status").text


def test_a_page_is_uploaded_and_its_lines_are_boxed_and_listed(server, browser, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    lines = [Image.open(SHIPPED_SAMPLES / f"sample-0{i}.png").convert("RGB") for i in (1, 2, 3)]
    page = Image.new(
        "RGB", (max(i.width for i in lines) + 80, sum(i.height + 30 for i in lines) + 60), "white"
    )
    for k, line in enumerate(lines):
        page.paste(line, (40, 40 + k * (line.height + 30)))
    path = tmp_path / "page.jpg"
    page.save(path, quality=92)

    wait = WebDriverWait(browser, 60)
    browser.get(server + "/")
    browser.find_element(By.ID, "page-input").send_keys(str(path))
    wait.until(lambda d: "Read 3 line(s)" in d.find_element(By.ID, "page-status").text)
    boxes = browser.find_elements(By.CSS_SELECTOR, "#page-boxes rect.line-box")
    listed = [item.find_element(By.CSS_SELECTOR, ".page-line-text").text for item in
              browser.find_elements(By.CSS_SELECTOR, "#page-lines li")]  # fmt: skip
    assert len(boxes) == 3 and len(listed) == 3
    assert near(listed[0], "Tổ 5 Ấp Suối Đục Sông Nhạn Cẩm Mỹ Đồng Nai")
    # the boxes sit over the image where the lines are: the first box is the topmost
    tops = [float(box.get_attribute("y")) for box in boxes]
    assert tops == sorted(tops)
    assert browser.find_element(By.ID, "copy-page").is_enabled()
    if os.environ.get("VIHTR_SCREENSHOTS"):
        browser.save_screenshot(str(Path(os.environ["VIHTR_SCREENSHOTS"]) / "page-reader.png"))
