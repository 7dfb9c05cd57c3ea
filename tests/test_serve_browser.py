"""The page at / in a real headless Chromium (Debian's chromium + chromium-driver, selenium).

Set NEWSIMG_SCREENSHOT=path to keep the screenshot (the README's docs/serve.png is made so).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve_helpers import pipeline, running

__all__ = ["pipeline"]

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def base(pipeline: Path) -> Iterator[str]:
    from newsimg.serve.app import create_app, load_desk

    with running(create_app(load_desk(pipeline, pipeline / "params.yaml"), workers=2)) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1500,1000"):  # fmt: skip
        options.add_argument(arg)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def card_keys(driver) -> list[str]:
    """The keys of the result cards shown, read in one script (the grid may be re-rendering)."""
    return driver.execute_script(
        "return [].map.call(document.querySelectorAll('#results .card'),"
        " function (c) { return c.getAttribute('data-key'); });"
    )


def test_search_more_like_this_shortlist_export_and_shared_url(browser, base: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.get(base + "/")
    box = wait(d, lambda d: d.find_element(By.ID, "q-text"))
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#approach option"))
    box.send_keys("boats in a harbour at dusk", Keys.ENTER)
    wait(d, lambda d: len(card_keys(d)) == 20)
    first = card_keys(d)
    assert "text=boats+in+a+harbour" in d.current_url
    status = d.find_element(By.ID, "status").text
    assert all(word in status for word in ("encode", "search", "ms"))  # latency shown

    # the results are what the API answers for the same query
    answer = d.execute_async_script(
        "var done = arguments[0]; fetch('/api/search', {method: 'POST', headers: "
        "{'Content-Type': 'application/json'}, body: JSON.stringify({text: "
        "'boats in a harbour at dusk', approach: 'lam', k: 20, offset: 0, dedup: true, "
        "include_originals: false})}).then(r => r.json()).then(done);"
    )
    assert first == [r["key"] for r in answer["results"]]

    # click a result: more like this, and it comes first
    picked = first[2]
    d.find_elements(By.CSS_SELECTOR, "#results .card img.thumb")[2].click()
    wait(d, lambda d: "key=" in d.current_url and card_keys(d)[:1] == [picked])
    similar = card_keys(d)

    # two on the shortlist, one by button and one by keyboard (s on the selected card)
    d.find_elements(By.CSS_SELECTOR, "#results .card .star")[0].click()
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT, "s")
    wait(d, lambda d: d.find_element(By.ID, "sl-count").text == "2")
    listed = [
        li.get_attribute("data-key") for li in d.find_elements(By.CSS_SELECTOR, "#sl-items li")
    ]
    assert listed == similar[:2]

    # export JSON and read the file the browser saved
    d.find_element(By.ID, "export-json").click()
    saved = wait(d, lambda d: [p for p in d.downloads.glob("*.json")] or None)
    body = json.loads(saved[0].read_text())
    assert [x["key"] for x in body["items"]] == listed
    assert [x["rank"] for x in body["items"]] == [1, 2]
    assert all(x["crop"] == f"/api/images/{x['key']}/crop" for x in body["items"])
    assert body["items"][0]["score"] == pytest.approx(1.0, abs=2e-3)

    # the crop preview
    d.find_element(By.TAG_NAME, "body").send_keys("c")
    img = wait(d, lambda d: d.find_element(By.ID, "preview-img"))
    wait(d, lambda d: d.execute_script("return arguments[0].naturalWidth", img) == 460)
    assert d.execute_script("return arguments[0].naturalHeight", img) == 260
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)

    # the shared URL, loaded fresh, shows the same view
    shared = d.current_url
    d.get("about:blank")
    d.get(shared)
    wait(d, lambda d: card_keys(d) == similar)
    wait(d, lambda d: d.find_element(By.ID, "sl-count").text == "2")
    shot = os.environ.get("NEWSIMG_SCREENSHOT")
    if shot:
        time.sleep(1)  # let the lazy thumbnails paint
        d.save_screenshot(shot)

    # back to the text query with the browser's history
    d.get(shared.split("?")[0] + "?" + "text=boats+in+a+harbour+at+dusk&approach=lam")
    wait(d, lambda d: card_keys(d) == first)


def test_errors_are_shown_plainly(browser, base: str) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    d.get(base + "/?key=../../etc/passwd")
    err = wait(
        d,
        lambda d: (
            d.find_element(By.ID, "error")
            if d.find_element(By.ID, "error").is_displayed()
            else None
        ),
    )
    assert err.text.startswith("key: no image")
    d.get(base + "/?text=" + "x" * 12000)
    wait(d, lambda d: "max_text_chars" in d.find_element(By.ID, "error").text)


def test_three_approaches_side_by_side_for_an_article(browser, base: str) -> None:
    from selenium.webdriver.common.by import By

    d = browser
    d.get(base + "/?view=articles")
    buttons = wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#article-list button"))
    buttons[0].click()
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#article-detail .columns > div")) == 3)
    heads = [h.text for h in d.find_elements(By.CSS_SELECTOR, "#article-detail h3")]
    assert [h.split(" · ")[0] for h in heads] == ["headline", "headline_lead", "lam"]
    assert "article=" in d.current_url
    # live, side by side
    d.find_element(By.CSS_SELECTOR, "#article-detail .article-head button").click()
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .columns > div")) == 3)
    assert "compare=1" in d.current_url
