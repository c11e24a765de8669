"""The app in a real browser: `streamlit run app.py` on the fixture store, driven by headless Chromium.

Every page is opened, its plotly charts must be drawn (an SVG with content), no page may show an
exception, and a screenshot of each is saved (to a temp dir, and to $SCORE_SAVE_SCREENSHOTS if set).
Needs Debian's chromium and chromium-driver (scripts/install_browser.sh); skipped without them.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (run scripts/install_browser.sh)", allow_module_level=True)
selenium = pytest.importorskip("selenium", reason="needs selenium (pip install -e '.[test]')")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests import fixtures_runs as fx  # noqa: E402

APP = Path(__file__).resolve().parent.parent / "app.py"
# (url path + query, title, plotly charts expected at least, screenshot name)
PAGES = [
    ("", "Runs", 0, "runs"),
    (f"live?run={fx.FINISHED}", "Live training", 8, "live"),
    (f"live?run={fx.RUNNING}", "Live training", 8, "live-running"),
    (f"traces?run={fx.FINISHED}&transition=i2c&split=train", "Trace inspector", 1, "traces"),
    (f"collapse?run={fx.MTRL}", "Behaviour collapse", 4, "collapse"),
    (f"shaping?run={fx.FINISHED}", "Reward shaping explorer", 3, "shaping"),
    ("compare", "Compare runs", 2, "compare"),
    ("ablation", "Ablation", 1, "ablation"),
    (f"live?run={fx.CORRUPT}", "Live training", 0, None),
]
DOCS = {"live", "traces", "collapse", "compare", "ablation"}  # the screenshots that go to $SCORE_SAVE_SCREENSHOTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-runs")
    fx.make_fixture(root)  # the running run's pid is this test process, alive while the app runs
    port = _free_port()
    log = open(root.parent / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--", "--runs-dir", str(root)],
        stdout=log, stderr=subprocess.STDOUT, cwd=str(APP.parent))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"streamlit did not start:\n{(root.parent / 'streamlit.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1300", "--hide-scrollbars",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    # An explicit Service: selenium-manager would otherwise try to download a driver.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _drawn_charts(driver) -> int:
    """Plotly charts whose SVG has drawn something (axes, bars, lines)."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('.js-plotly-plot')).filter(p => {
            const svg = p.querySelector('.main-svg');
            return svg && svg.getBoundingClientRect().width > 0 && p.querySelectorAll('.main-svg *').length > 10;
        }).length;""")


def _save(driver, name: str, tmp: Path) -> None:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # not a blank page
    out = os.environ.get("SCORE_SAVE_SCREENSHOTS")
    if out and name in DOCS:
        Path(out).mkdir(parents=True, exist_ok=True)
        _shrink(path, Path(out) / f"{name}.png")


def _shrink(src: Path, dst: Path) -> None:
    """A palette PNG: the app's flat colours survive, the file stays far under 300 KB."""
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(src, dst)
        return
    img = Image.open(src).convert("RGB")
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


@pytest.mark.parametrize("path,title,n_charts,shot", PAGES, ids=[p[0] or "runs" for p in PAGES])
def test_page_renders_in_a_browser(server, browser, tmp_path_factory, path, title, n_charts, shot):
    browser.get(f"{server}/{path}")
    wait = WebDriverWait(browser, 90, poll_frequency=0.5)
    wait.until(lambda d: any(title == h.text.strip() for h in d.find_elements(By.CSS_SELECTOR, "h1")))
    if n_charts:
        wait.until(lambda d: _drawn_charts(d) >= n_charts)
    else:
        # no charts on this page: wait for its main element instead
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"], [data-testid="stAlert"]'))
    # let the last elements settle (Streamlit streams the page in deltas)
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stSkeleton"]'))
    time.sleep(1.0)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    if fx.CORRUPT in path:
        assert "not valid JSON" in browser.find_element(By.CSS_SELECTOR, '[data-testid="stAlert"]').text
    if path == "":
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    if path.startswith("traces"):  # the filtered i->c episode: both sides of the diff are marked
        page = browser.page_source
        assert "line-through" in page and ("rgb(178, 242, 187)" in page or "#b2f2bb" in page)
    if shot:
        _save(browser, shot, tmp_path_factory.getbasetemp() / "screenshots")
