"""The README's pictures of the web page, taken from the real thing: `rvaed run` on a private
JACK server, the page in Debian's chromium at a phone's size, one picture per view. It also
prints what the page weighs and how long it takes to load, over a few fresh loads.

    python tests/support/screenshot.py docs/        # writes docs/web-play.png, web-train.png ...

Run from the repository with the project's venv (Playwright for Python, jackd2, chromium).
"""

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import PHONE, launch, open_page, start_daemon
from playwright.sync_api import sync_playwright

from rvaed.benchmarks.harness import private_jack_server

GROOVE = Path(__file__).resolve().parents[1] / "data" / "groove"
LOADS = 5


def page_figures(browser, url: str) -> dict:
    """Median of ``LOADS`` fresh loads, timed by the page from its navigation start: until the
    load event, and until the pad is first drawn with the daemon's state (snapshot, map and
    grid); the bytes the page fetched."""
    loads, ready, weights = [], [], []
    for _ in range(LOADS):
        page = open_page(browser, url)
        ready.append(page.evaluate("window.rvaed.readyAt") / 1000)  # from navigation start
        loads.append(page.evaluate(
            "performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
        weights.append(page.evaluate("""performance.getEntriesByType('navigation')
            .concat(performance.getEntriesByType('resource'))
            .reduce((sum, e) => sum + e.transferSize, 0)"""))
        page.context.close()
    return {"load_s": statistics.median(loads), "ready_s": statistics.median(ready),
            "transferred_kb": statistics.median(weights) / 1024}


def shoot(folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as root, private_jack_server(prefix="rvaed-shot"), \
            sync_playwright() as playwright:
        rig = start_daemon(Path(root), training={"epochs": 5})
        try:
            browser = launch(playwright)
            figures = page_figures(browser, rig.url)
            page = open_page(browser, rig.keyed, viewport=PHONE)
            page.wait_for_timeout(600)
            page.screenshot(path=str(folder / "web-play.png"), full_page=True)
            page.click("nav button[data-view=train]")
            page.set_input_files("#files", sorted(GROOVE.rglob("*4-4.mid"))[:3])
            page.wait_for_selector("#report table")
            page.click("#start")
            page.wait_for_function("window.rvaed.snap.training.curve.length >= 3",
                                   timeout=180000)
            page.screenshot(path=str(folder / "web-train.png"), full_page=True)
            page.wait_for_function("window.rvaed.snap.model !== 'starter'", timeout=180000)
            page.click("nav button[data-view=models]")
            page.wait_for_selector(".card:nth-child(2) img")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(folder / "web-models.png"), full_page=True)
            browser.close()
        finally:
            rig.daemon.stop()
    return figures


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    result = shoot(out)
    print(f"page: load event {result['load_s'] * 1000:.0f} ms, showing the daemon's state "
          f"{result['ready_s'] * 1000:.0f} ms (median of {LOADS} fresh loads), "
          f"{result['transferred_kb']:.1f} KB transferred; pictures in {out}/")
