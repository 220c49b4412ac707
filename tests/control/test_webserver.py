"""The web page's server over real HTTP and WebSocket on 127.0.0.1 (aiohttp's client in this
process as the page's stand-in; the browser itself is in tests/e2e/test_web.py): commands go
through the OSC route table, every client gets the same snapshot, files need the key, bad
input is one error message and the state stays valid."""

import asyncio
import json

import aiohttp
import numpy as np
import pytest
from performer import make_performance, until

from rvaed.control.osc import OscServer, Route
from rvaed.control.web import view
from rvaed.control.web.server import WebServer, assets
from rvaed.core.errors import RvaedError
from rvaed.core.secret import MAX_TRIES, SessionSecret
from rvaed.core.state import PARAMETERS
from rvaed.model.latentmap import decode_tiles


class Files:
    """The daemon side, recording what it was asked (the real one: tests/e2e/test_web.py)."""

    def __init__(self) -> None:
        self.uploads: list = []

    def extras(self) -> dict:
        return {"model": "test", "training": {"busy": False, "status": "idle", "curve": []},
                "automation": {"status": "idle", "points": []}}

    async def upload(self, files):
        self.uploads.append(files)
        return {"batch": "b", "files": [name for name, _ in files]}

    def train(self, batch):
        raise RvaedError(f"no upload {batch!r}")

    async def models(self):
        return [{"name": "starter"}]

    async def thumbnail(self, name):
        return b"png"

    async def rename(self, name, new):
        return new

    async def capture(self, bars, coming=False):
        return "x.mid"

    def capture_file(self, name):
        raise RvaedError("no capture")


async def serve(model_dir, **options):
    perf = make_performance(model_dir)
    registry = OscServer(perf)  # the route table, not bound: the page alone uses it
    files, secret = Files(), SessionSecret()
    touch = Route("/test/touch", "", "a command that touches files",
                  lambda owner, sender, args, at: owner.uploads.append(("touched", args)),
                  files=True)
    registry.serve([touch], files, lambda host: False)  # no OSC sender may
    server = WebServer(perf, registry.route, files, secret, port=0, **options)
    await perf.start()
    await server.start()
    return perf, server, files, secret


async def socket_messages(ws, kind: str, count: int = 1) -> list[dict]:
    found = []
    while len(found) < count:
        message = json.loads((await ws.receive(timeout=5)).data)
        if message["t"] == kind:
            found.append(message)
    return found


def test_commands_go_through_the_route_table_and_every_client_sees_the_result(model_dir):
    async def scenario():
        perf, server, _, _ = await serve(model_dir)
        url = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            one = await session.ws_connect(f"{url}/ws")
            two = await session.ws_connect(f"{url}/ws")
            (hello,) = await socket_messages(one, "hello")
            assert [p["address"] for p in hello["parameters"]] == \
                [row.address for row in PARAMETERS.values()]
            await one.send_str(json.dumps({"a": "/rvaed/xy", "v": [0.2, 0.9]}))
            await one.send_str(json.dumps({"a": "/rvaed/threshold", "v": [0.35]}))
            await one.send_str(json.dumps({"a": "/rvaed/mute", "v": ["snare", 1]}))
            await until(lambda: perf.state.mutes == {1})
            assert (perf.state.x, perf.state.y, perf.state.threshold) == (0.2, 0.9, 0.35)
            while True:  # the other page is told
                (state,) = await socket_messages(two, "state")
                if state.get("mutes") == [1]:
                    break
            assert state["x"] == 0.2 and state["values"]["threshold"] == 0.35
            assert perf.pattern.onsets[0].tolist() == \
                perf.decoder.decode_xy(0.2, 0.9).onsets[0].tolist()
            for one_event, shown in zip(perf.schedule.events, state["pattern"], strict=True):
                assert shown[:3] == [one_event.voice, one_event.step, one_event.velocity]
            await one.close()
            await two.close()
        await server.close()
        await perf.stop()

    asyncio.run(scenario())


def test_bad_commands_are_one_error_each_and_leave_the_state_valid(model_dir):
    async def scenario():
        perf, server, _, _ = await serve(model_dir)
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"http://127.0.0.1:{server.port}/ws")
            bad = ["not json", json.dumps([1]), json.dumps({"a": "/rvaed/x", "v": "1"}),
                   json.dumps({"a": "/rvaed/x", "v": [float("nan")]}),  # NaN is JSON to Python
                   json.dumps({"a": "/nope", "v": []}),
                   json.dumps({"a": "/rvaed/state", "v": []}),  # answers over UDP: not here
                   json.dumps({"a": "/rvaed/xy", "v": [1]})]
            for text in bad:
                await ws.send_str(text)
            errors = await socket_messages(ws, "error", len(bad))
            assert all(len(e["message"].splitlines()) == 1 for e in errors)
            assert "unknown address '/rvaed/state'" in errors[5]["message"]
            await ws.send_str(json.dumps({"a": "/rvaed/x", "v": [7.0]}))  # clamped
            await until(lambda: perf.state.x == 1.0)
            await ws.close()
        await server.close()
        await perf.stop()

    asyncio.run(scenario())


def test_files_need_the_key_and_the_same_origin(model_dir):
    async def scenario():
        perf, server, files, secret = await serve(model_dir, max_file_bytes=100,
                                                  max_request_bytes=150)
        url = f"http://127.0.0.1:{server.port}"
        key = {"X-Rvaed-Key": secret.key}

        def form(*sizes):
            data = aiohttp.FormData()
            for n, size in enumerate(sizes):
                data.add_field("file", b"M" * size, filename=f"{n}.mid")
            return data

        async with aiohttp.ClientSession() as session:
            async def status(method, path, **kw):
                async with session.request(method, url + path, **kw) as response:
                    return response.status

            assert await status("POST", "/api/upload", data=form(10)) == 401
            assert await status("POST", "/api/upload", data=form(10),
                                headers={"X-Rvaed-Key": "wrong"}) == 401
            assert await status("POST", "/api/upload", data=form(10),
                                headers={**key, "Origin": "http://evil.example"}) == 403
            assert not files.uploads
            assert await status("POST", "/api/upload", data=form(101), headers=key) == 413
            assert await status("POST", "/api/upload", data=form(90, 90), headers=key) == 413
            assert await status("POST", "/api/upload", data=form(90, 50), headers=key) == 200
            assert [len(data) for _, data in files.uploads[0]] == [90, 50]
            assert await status("GET", f"/api/models?key={secret.key}") == 200
            assert await status("POST", "/api/train", json={"batch": "x"}, headers=key) == 400
            ws = await session.ws_connect(f"{url}/ws")  # no key: file routes refused
            await ws.send_str(json.dumps({"a": "/test/touch", "v": []}))
            (error,) = await socket_messages(ws, "error")
            assert "/test/touch: needs the session key" in error["message"]
            await ws.close()
            ws = await session.ws_connect(f"{url}/ws?key={secret.key}")
            await ws.send_str(json.dumps({"a": "/test/touch", "v": [1]}))
            await until(lambda: ("touched", (1,)) in files.uploads)
            await ws.close()
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(f"{url}/ws", headers={"Origin": "http://evil.example"})
            async with session.post(f"{url}/api/pair", json={"code": secret.code}) as response:
                assert (await response.json())["key"] == secret.key
        await server.close()
        await perf.stop()

    asyncio.run(scenario())


def test_the_page_ships_in_the_package_and_refers_only_to_itself(model_dir):
    async def scenario():
        perf, server, _, _ = await serve(model_dir)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/") as response:
                html = await response.text()
            for name in server.assets:
                async with session.get(f"http://127.0.0.1:{server.port}/static/{name}") as r:
                    assert r.status == 200 and await r.read() == server.assets[name]
            async with session.get(f"http://127.0.0.1:{server.port}/static/../server.py") as r:
                assert r.status == 404
        await server.close()
        await perf.stop()
        return html

    html = asyncio.run(scenario())
    assert 'src="/static/app.js"' in html
    for name, body in assets().items():  # nothing fetched from elsewhere: no URL at all
        assert b"https://" not in body and b"http://" not in body and b"//cdn" not in body, name


def test_the_map_under_the_pad_is_the_decoded_grid(model_dir):
    perf = make_performance(model_dir)
    data = view.latent_map(perf.decoder, 5)
    tiles = decode_tiles(perf.decoder, 5)
    assert len(data["tiles"]) == 25 and data["positions"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    digits = np.array([[list(map(int, row)) for row in tile] for tile in data["tiles"]])
    assert (digits == np.minimum(9, (tiles * 10).astype(int)).reshape(25, *tiles.shape[2:])).all()
    top_left = perf.decoder.decode_xy(0.0, 1.0).onsets  # row 0 is y = 1, column 0 is x = 0
    assert np.allclose(tiles[0, 0], top_left, atol=1e-5)


def test_session_secret_pairs_once_per_code_and_replaces_a_guessed_one():
    secret = SessionSecret()
    assert secret.valid(secret.key) and not secret.valid(secret.key[:-1]) and not secret.valid(1)
    assert secret.pair(secret.code) == secret.key
    keyless = SessionSecret(key="")  # a key that could not be had admits nobody
    assert not keyless.valid("") and keyless.pair(keyless.code) is None
    first = secret.code
    for _ in range(MAX_TRIES - 1):
        assert secret.pair("nope") is None
    assert secret.code == first and secret.wrong == MAX_TRIES - 1
    assert secret.pair("nope") is None
    assert secret.wrong == 0 and secret.code != first  # a new code (same by 1 in 10**6)
    assert secret.pair(secret.code) == secret.key
