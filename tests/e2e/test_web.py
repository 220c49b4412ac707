"""End to end: the page in a real browser (Debian's chromium, headless, via Playwright) on the
real `rvaed run`, playing to a private JACK server whose notes jack_midi_dump receives.

What the page shows is compared with what arrives at the receiver over whole loops, bounded by
beats read from the daemon's clock (the snapshot carries the host-clock time of a beat), not by
wall-clock sleeps. Link is off (the page shows its state either way), so no namespace is needed.
"""

import json
import math
import os
import shutil
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from browser import PHONE, launch, open_page, start_daemon
from jackmidi import Receiver

from rvaed.engine.clock import now

GROOVE = Path(__file__).resolve().parents[1] / "data" / "groove"
NOTE_ON = 0x90

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Debian's chromium (/usr/bin/chromium)")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def rig(tmp_path_factory, jack_server):
    rig = start_daemon(tmp_path_factory.mktemp("web"),
                       training={"settle_seconds": 0.5, "epochs": 3})
    yield rig
    rig.daemon.kill()


@pytest.fixture
def receiver(rig):
    rx = Receiver(f"rx-web-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    rx.connect_from("rvaed:rvaed")
    yield rx
    rx.close()


def snap(page) -> dict:
    return page.evaluate("window.rvaed.snap")


def wait_snap(page, condition: str, timeout: float = 10000) -> dict:
    """Wait until the page's snapshot satisfies the JS ``condition`` (on ``s``)."""
    page.wait_for_function(f"(s => {condition})(window.rvaed.snap)", timeout=timeout)
    return snap(page)


def grid_notes(page) -> list[tuple[int, int]]:
    """(note, velocity) of every hit the grid shows as sent, read from the page's cells."""
    cells = page.evaluate("""[...document.querySelectorAll('#grid .cell[data-note]')]
        .map(c => [Number(c.dataset.note), Number(c.dataset.velocity)])""")
    return sorted(tuple(c) for c in cells)


def quiet_step(page) -> float:
    """The step (a fraction: between two steps) in the middle of the longest run of steps the
    grid shows no hit on, cyclically: loop windows start there, as far from any hit as can be,
    so a note stamped late at the receiver stays in its own loop."""
    s = snap(page)
    steps = s["grid"]["steps"]
    hit = sorted({h[1] for h in s["pattern"] if h[4] is not None})
    if not hit:
        return 0.0
    gaps = [((hit[(i + 1) % len(hit)] - a) % steps or steps, a) for i, a in enumerate(hit)]
    gap, after = max(gaps)
    return (after + gap / 2) % steps


def next_loop(page, after_loops: int = 1) -> tuple[float, float]:
    """Host-clock start and end of a whole loop beginning at `quiet_step`, ``after_loops``
    loop boundaries from now (the hits are quantized: each sounds on its step)."""
    s = snap(page)
    clock, grid = s["clock"], s["grid"]
    loop = grid["steps"] / grid["steps_per_beat"]
    seconds_per_beat = 60.0 / clock["tempo"]
    loops_done = math.floor((clock["beat"] - clock["start_beat"]) / loop)
    start_beat = (clock["start_beat"] + (loops_done + after_loops) * loop
                  + quiet_step(page) / grid["steps_per_beat"])
    start = clock["now"] + (start_beat - clock["beat"]) * seconds_per_beat
    return start, start + loop * seconds_per_beat


def received(receiver: Receiver, window: tuple[float, float]) -> list[tuple[int, int]]:
    """(note, velocity) of the note-ons that arrived inside ``window`` (waits for its end)."""
    start, end = window
    assert receiver.wait_for(lambda m: (m and m[-1][0] > end) or now() > end + 0.5,
                             timeout=end - now() + 5)
    return sorted((m[1], m[2]) for t, m in receiver.kinds(NOTE_ON)
                  if start <= t < end and m[2] > 0)


def loops_received(page, receiver: Receiver, loops: int = 3) -> list[list[tuple[int, int]]]:
    """What arrived in each of the next ``loops`` whole loops."""
    first = next_loop(page)
    length = first[1] - first[0]
    windows = [(first[0] + i * length, first[1] + i * length) for i in range(loops)]
    return [received(receiver, window) for window in windows]


def assert_played(loops: list[list[tuple[int, int]]], shown: list[tuple[int, int]]) -> None:
    """Every loop brought only hits the grid shows (none more, none other), and every hit
    shown arrived as often as shown in some loop. (A JACK dummy server without real-time
    priority drops a cycle's events now and then on a loaded machine: a hit missing from one
    loop is that; a hit missing from every loop, or one too many, is the page or the player.)
    """
    assert shown, "the grid shows no hits"
    for loop in loops:
        extra = Counter(loop) - Counter(shown)
        assert not extra, f"played but not shown: {sorted(extra.elements())}"
    best = Counter()
    for loop in loops:
        best |= Counter(loop)
    missing = Counter(shown) - best
    assert not missing, f"shown but never played: {sorted(missing.elements())}"


def quantized(rig, page) -> None:
    """No microtiming and no swing, at 100 BPM: every hit sounds on its step, at least half a
    step (150 ms) from the edges of a loop window."""
    rig.daemon.osc("/rvaed/timing", 0.0)
    rig.daemon.osc("/rvaed/swing", 0.5)
    rig.daemon.osc("/rvaed/tempo", 100.0)
    rig.daemon.osc("/rvaed/threshold", 0.3)
    wait_snap(page, "s.values.timing === 0 && s.clock.tempo === 100 && "
                    "Math.abs(s.values.threshold - 0.3) < 1e-6")


def drag(page, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
    """A mouse drag on the pad between two pad positions (y up)."""
    box = page.locator("#pad").bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + (1 - y) * box["height"]

    page.mouse.move(*at(*start))
    page.mouse.down()
    for i in range(1, steps + 1):
        f = i / steps
        page.mouse.move(*at(start[0] + (end[0] - start[0]) * f,
                            start[1] + (end[1] - start[1]) * f))
        page.wait_for_timeout(20)
    page.mouse.up()


def settled(page) -> dict:
    """After a drag: the snapshot holding the last x/y the page sent."""
    page.wait_for_function("!window.rvaed.finger && !window.rvaed.pending")
    return wait_snap(page, "s.x === window.rvaed.sent.v[0] && s.y === window.rvaed.sent.v[1]")


def test_page_loads_and_asks_nothing_outside_the_daemon(rig, browser):
    requests: list[str] = []
    started = time.monotonic()
    page = open_page(browser, rig.keyed, requests=requests)
    ready = time.monotonic() - started
    timing = page.evaluate("performance.getEntriesByType('navigation')[0].toJSON()")
    print(f"page ready (snapshot, map, grid) {ready * 1000:.0f} ms, load event "
          f"{timing['loadEventEnd']:.0f} ms")
    for view in ("train", "models", "play"):
        page.click(f"nav button[data-view={view}]")
        page.wait_for_timeout(400)
    page.wait_for_function("document.querySelector('.card img') && "
                           "document.querySelector('.card img').complete")
    base = rig.url.rstrip("/")
    outside = [u for u in requests if not (u.startswith(base + "/") or u.startswith("ws://"
               + base.split("//", 1)[1] + "/") or u.startswith("data:"))]
    assert requests and not outside, outside
    with urllib.request.urlopen(rig.url) as response:
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.evaluate("location.search") == "", "the key stays in the address bar"


def test_phone_viewport_shows_everything_on_screen(rig, browser):
    page = open_page(browser, rig.keyed, viewport=PHONE)
    page.set_input_files("#files", [sorted(GROOVE.rglob("*.mid"))[0]])
    page.wait_for_selector("#report table", state="attached")
    for view, shown in (("play", "#grid .cell"), ("train", "#report table"),
                        ("models", ".card img")):
        page.click(f"nav button[data-view={view}]")
        page.wait_for_selector(f"#{view} {shown}")
        found = page.evaluate("""() => {
            const width = document.documentElement.clientWidth, bad = [];
            for (const node of document.querySelectorAll('body *')) {
                const r = node.getBoundingClientRect();
                if (!r.width || !r.height) continue;
                if (r.left < -0.5 || r.right > width + 0.5)
                    bad.push(`${node.tagName}#${node.id}.${node.className} ${r.left}..${r.right}`);
            }
            return {width, scroll: document.documentElement.scrollWidth, bad,
                    shown: document.querySelectorAll(`#${document.querySelector(
                        'nav .on').dataset.view} *`).length};
        }""")
        assert found["width"] == PHONE["width"] and found["shown"] > 3, found
        assert not found["bad"] and found["scroll"] <= found["width"], (view, found)


def test_grid_shows_exactly_the_hits_the_sequencer_sends(rig, browser, receiver):
    page = open_page(browser, rig.url)
    quantized(rig, page)
    rig.daemon.osc("/rvaed/xy", 0.3, 0.7)
    wait_snap(page, "Math.abs(s.x - 0.3) < 1e-6")
    page.wait_for_timeout(200)  # the grid is drawn from the snapshot that says so
    shown = grid_notes(page)
    assert_played(loops_received(page, receiver), shown)
    assert grid_notes(page) == shown  # nothing changed meanwhile


def test_a_drag_on_the_pad_changes_what_the_receiver_gets(rig, browser, receiver):
    page = open_page(browser, rig.url)
    quantized(rig, page)
    drag(page, (0.5, 0.5), (0.08, 0.1))
    assert settled(page)["x"] == pytest.approx(0.08, abs=0.02)
    page.wait_for_timeout(200)
    before, loops_before = grid_notes(page), loops_received(page, receiver)
    drag(page, (0.08, 0.1), (0.92, 0.9))
    assert settled(page)["y"] == pytest.approx(0.9, abs=0.02)
    page.wait_for_timeout(200)
    after, loops_after = grid_notes(page), loops_received(page, receiver)
    assert_played(loops_before, before)
    assert_played(loops_after, after)
    assert before != after, "the drag did not change what was played"


def test_two_pages_stay_in_sync(rig, browser):
    one, two = open_page(browser, rig.url), open_page(browser, rig.url)
    one.locator("input[data-param=noise]").fill("0.25")  # a slider moved on one page
    wait_snap(two, "Math.abs(s.values.noise - 0.25) < 0.003")
    two.wait_for_function("Math.abs(document.querySelector('input[data-param=noise]').value"
                          " - 0.25) < 0.003")
    one.click("[data-mute='1']")
    two.wait_for_function("document.querySelector(\"[data-mute='1']\").classList"
                          ".contains('on')")
    drag(two, (0.2, 0.2), (0.6, 0.4))
    settled(two)
    wait_snap(one, "Math.abs(s.x - 0.6) < 0.02")
    one.click("#store")
    one.click("#presets [data-preset='3']")  # stores where the other page dragged to
    preset = wait_snap(two, "s.presets[2] !== null")["presets"][2]
    assert preset == pytest.approx([0.6, 0.4], abs=0.02)
    rig.daemon.osc("/rvaed/noise", 0.0)  # and OSC from another process moves both
    rig.daemon.osc("/rvaed/mute", 2, 0)
    for page in (one, two):
        wait_snap(page, "s.values.noise === 0 && !s.mutes.includes(1)")


def test_conditions_and_a_new_seed_set_on_one_page_show_on_the_other(rig, browser):
    one, two = open_page(browser, rig.url), open_page(browser, rig.url)
    one.select_option("select[data-param=condition_kick]", label="1:2")
    wait_snap(two, "s.values.condition_kick === 9")  # 1:2, as the daemon says
    two.wait_for_function("document.querySelector('select[data-param=condition_kick]')"
                          ".selectedOptions[0].textContent === '1:2'")
    one.click("#grid .cell[data-voice='1'][data-step='4']")
    one.select_option("#stepcond", "not fill")
    wait_snap(two, "JSON.stringify(s.steps) === '[[1,4,\"not fill\"]]'")
    two.wait_for_function("document.querySelector(\"#grid .cell[data-voice='1']"
                          "[data-step='4']\").dataset.condition === 'not fill'")
    two.click("#grid .cell[data-voice='1'][data-step='4']")
    assert two.input_value("#stepcond") == "not fill"
    two.click("#showcoming")  # the coming phrase: kicks only on the first loop of two
    two.wait_for_function("window.rvaed.coming && window.rvaed.coming.bars === 2")
    coming = two.evaluate("window.rvaed.coming")
    kicks = {(coming["first"] + column) // 32 % 2 for column, voice, _ in coming["hits"]
             if voice == 0}
    assert kicks <= {0} and two.is_visible("#comingview")
    status, body = request(rig, "/api/coming?bars=8")
    eight = json.loads(body)
    assert status == 200 and {(eight["first"] + column) // 32 % 2 for column, voice, _ in
                               eight["hits"] if voice == 0} == {0}
    assert request(rig, "/api/coming?bars=99")[0] == 400
    two.select_option("#stepcond", "always")  # back to its voice's, for the tests after
    two.select_option("select[data-param=condition_kick]", label="always")
    wait_snap(one, "s.steps.length === 0 && s.values.condition_kick === 0")
    seeds = {snap(one)["values"]["seed"]}
    for _ in range(3):  # a new seed each time, never the one playing
        one.click("#reroll")
        seed = wait_snap(two, f"!{sorted(seeds)}.includes(s.values.seed)")["values"]["seed"]
        seeds.add(seed)
    assert len(seeds) == 4


def request(rig, path: str, body: bytes | None = None, **headers) -> tuple[int, bytes]:
    """An HTTP request from outside a browser (any header, e.g. a foreign Origin)."""
    req = urllib.request.Request(rig.url.rstrip("/") + path, data=body, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_without_the_key_uploads_and_file_commands_are_refused(rig, browser):
    page = open_page(browser, rig.url)  # no key in this context
    uploads = rig.daemon.dirs["state"] / "uploads"
    before = sorted(uploads.iterdir()) if uploads.exists() else []
    status = page.evaluate("""async () => {
        const form = new FormData();
        form.append('file', new File([new Uint8Array([77, 84, 104, 100])], 'a.mid'));
        return (await fetch('/api/upload', {method: 'POST', body: form})).status; }""")
    assert status == 401
    assert (sorted(uploads.iterdir()) if uploads.exists() else []) == before
    page.evaluate("window.rvaed.socket.send(JSON.stringify({a: '/rvaed/model', v: ['x']}))")
    page.wait_for_function("document.querySelector('#error').textContent"
                           ".includes('needs the session key')")
    page.click("nav button[data-view=models]")
    page.wait_for_selector("#models form.pair")
    for path in ("/api/models", "/api/captures/x.mid"):
        assert request(rig, path)[0] == 401
    assert request(rig, "/api/capture", b"{}")[0] == 401
    assert request(rig, "/api/pair", b'{"code": "not it"}')[0] == 401
    # with the key but from another site's page: refused too
    assert request(rig, "/api/capture", b"{}", **{"X-Rvaed-Key": rig.key,
                   "Origin": "http://elsewhere.example"})[0] == 403
    # paths stay inside the captures folder
    assert request(rig, f"/api/captures/..%2Fstate%2Fstate.json?key={rig.key}")[0] == 404
    # the pairing code gives the key
    page.fill("#models form.pair input", rig.code)
    page.click("#models form.pair button")
    page.wait_for_selector("#library .card[data-model=starter]")


def test_capture_downloads_the_loop_as_a_midi_file(rig, browser):
    page = open_page(browser, rig.keyed)
    with page.expect_download() as download:
        page.click("#capture")
    path = download.value.path()
    saved = sorted(rig.daemon.dirs["captures"].glob("*.mid"))
    assert saved and Path(path).read_bytes() == saved[-1].read_bytes()
    assert Path(path).read_bytes().startswith(b"MThd")


def test_three_dropped_midi_files_train_a_model_that_then_plays(rig, browser, receiver):
    page = open_page(browser, rig.keyed)
    page.click("nav button[data-view=train]")
    files = [p for p in sorted(GROOVE.rglob("*.mid")) if "4-4" in p.name][:3]
    payload = [{"name": f.name, "bytes": list(f.read_bytes())} for f in files]
    payload.append({"name": "notes.txt", "bytes": list(b"not MIDI")})
    page.evaluate("""files => {  // the paper's drag and drop: a drop event carrying files
        const data = new DataTransfer();
        for (const f of files) data.items.add(new File([new Uint8Array(f.bytes)], f.name));
        document.querySelector('#drop').dispatchEvent(
            new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
    }""", payload)
    page.wait_for_selector("#report table")
    report = page.inner_text("#report")
    assert "3 file(s) read, 1 refused" in report and "notes.txt: not a MIDI file" in report
    for file in files:
        assert file.name.removesuffix(".mid") in report
    page.click("#start")
    trained = wait_snap(page, "s.model !== 'starter'", timeout=240000)
    curve = trained["training"]["curve"]
    assert [e["epoch"] for e in curve] == [1, 2, 3]
    assert all(e["loss"] > 0 and e["val_loss"] > 0 and 0 <= e["val_onset_f1"] <= 1
               for e in curve)
    page.wait_for_function("document.querySelector('#chart').width > 0")
    assert trained["model"].startswith("dropped-")
    swapped = now()
    assert receiver.wait_for(lambda m: any(t > swapped + 1 and s & 0xF0 == NOTE_ON
                                           for t, (s, *_) in m), 10)
    page.click("nav button[data-view=models]")
    card = f"#library .card.playing[data-model='{trained['model']}']"
    page.wait_for_selector(card)
    page.wait_for_function(f"document.querySelector(\"{card} img\").naturalWidth > 0")
    manifest = json.loads((rig.daemon.dirs["models"] / trained["model"] / "manifest.json")
                          .read_text())
    shown = page.inner_text(card)  # what training found: the pad's patterns, any warning
    assert f"{manifest['metrics']['pad_patterns']} patterns on the pad" in shown, shown
    assert all(note in shown for note in manifest["training"]["notes"]), shown
    assert (rig.daemon.dirs["models"] / trained["model"]).is_dir()
    status, body = request(rig, f"/api/models/{trained['model']}/rename",
                           b'{"name": "my groove"}', **{"X-Rvaed-Key": rig.key,
                                                         "Content-Type": "application/json"})
    assert status == 200
    renamed = json.loads(body)["name"]
    assert renamed.startswith("my-groove-") and renamed[-15:] == trained["model"][-15:]
    wait_snap(page, f"s.model === {renamed!r}")  # the playing model keeps playing, renamed
    assert (rig.daemon.dirs["models"] / renamed).is_dir()
    shutil.rmtree(rig.daemon.dirs["state"] / "uploads")


def test_the_daemon_stops_cleanly_with_pages_open(rig, browser):  # last: it ends the daemon
    pages = [open_page(browser, rig.url) for _ in range(2)]
    assert rig.daemon.stop() == 0
    for page in pages:
        page.wait_for_function("document.querySelector('#conn').textContent === 'offline'")
    assert "rvaed: stopped" in rig.daemon.text()
