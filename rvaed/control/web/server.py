"""The web page: the paper's device in a browser, served by aiohttp on the daemon's own loop.

One page (rvaed/control/web/static: no CDN, nothing fetched from anywhere but this server, so
it works at an offline gig) for a phone, a tablet and a laptop at once. Every client holds a
WebSocket: it sends OSC-shaped commands ``{"a": ADDRESS, "v": [ARGS]}``, which go through the
very route table OSC serves (`Lookup`: the daemon's registry, rvaed.daemon.routes), and it
receives the same snapshot as every other client (rvaed.control.web.view) whenever something
changed, at most every ``FEEDBACK_INTERVAL``: presets, automation and other clients move every
page. A slow client only ever gets the newest snapshot, never a backlog.

Security, as for OSC: what changes the music is open to whoever reaches the page; what touches
files (the routes marked ``files``, uploads, training, the model library, captures) needs the
session key (a URL carrying ``?key=``, or the pairing code traded for it at /api/pair). Every
request that changes something must come from the page's own origin (a browser sends Origin;
another site's page cannot drive the rig through a musician's browser). Uploads obey the
configured `limits`; the daemon side (`Desk`) confines every path it names.
"""

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from rvaed.control.hub import Hub
from rvaed.control.osc import Route
from rvaed.control.ratelimit import RateLimitedLog
from rvaed.control.web import view
from rvaed.core.errors import RvaedError
from rvaed.core.secret import SessionSecret
from rvaed.core.state import PHRASE_MAX

log = logging.getLogger(__name__)

FEEDBACK_INTERVAL = 0.05
CLOCK_EVERY = 1.0  # seconds between snapshots while nothing changes (the playhead's anchor)
MAX_MESSAGE = 4096  # bytes of one WebSocket message from a client
MAX_CLIENTS = 32
CLOSE_TIMEOUT = 1.0  # seconds a page has to answer the close at shutdown
KEY_HEADER = "X-Rvaed-Key"
# Routes that answer the sender over UDP: the page has its snapshots instead.
NOT_OVER_WEB = frozenset({"/rvaed/state", "/rvaed/subscribe", "/rvaed/unsubscribe",
                          "/rvaed/models"})
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
         ".svg": "image/svg+xml"}
Lookup = Callable[[str], tuple[Route, object] | None]  # address -> (route, its owner)


class Desk(Protocol):
    """What the daemon does for the page beyond the routes (all paths confined by it)."""

    def extras(self) -> dict: ...
    async def upload(self, files: list[tuple[str, bytes]]) -> dict: ...
    def train(self, batch: str) -> None: ...
    async def models(self) -> list[dict]: ...
    async def thumbnail(self, name: str) -> bytes: ...
    async def rename(self, name: str, new: str) -> str: ...
    async def capture(self, bars: int | None, coming: bool = False) -> str: ...
    def capture_file(self, name: str) -> Any: ...


def assets() -> dict[str, bytes]:
    """The page's files, by name (read once: they ship in the package)."""
    folder = resources.files("rvaed.control.web").joinpath("static")
    return {item.name: item.read_bytes() for item in folder.iterdir()
            if item.is_file() and "." + item.name.rsplit(".", 1)[-1] in TYPES}


class Client:
    """One WebSocket: the snapshot parts not yet sent (newer values replace older ones), a
    short queue for the messages that must all arrive (hello, errors), and a task that sends
    them."""

    def __init__(self, socket: web.WebSocketResponse, trusted: bool) -> None:
        self.socket, self.trusted = socket, trusted
        self._pending: dict = {}
        self._queue: deque[str] = deque(maxlen=16)
        self._ready = asyncio.Event()

    def offer(self, update: dict) -> None:
        """Send these parts of the snapshot (merged with any not sent yet)."""
        self._pending.update(update)
        self._ready.set()

    def tell(self, text: str) -> None:
        """Send ``text`` for sure (the oldest of a flood of them are dropped)."""
        self._queue.append(text)
        self._ready.set()

    async def send_newest(self) -> None:
        while not self.socket.closed:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                await self.socket.send_str(self._queue.popleft())
            update, self._pending = self._pending, {}
            if update:
                await self.socket.send_str(json.dumps({"t": "state", **update}))


class WebServer:
    """HTTP and WebSocket endpoint of the daemon on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, hub: Hub, lookup: Lookup, desk: Desk, secret: SessionSecret, *,
                 host: str = "127.0.0.1", port: int = 8080, max_file_bytes: int = 1 << 20,
                 max_request_bytes: int = 64 << 20) -> None:
        self.hub, self.lookup, self.desk, self.secret = hub, lookup, desk, secret
        self.host, self.port = host, port
        self.max_file_bytes, self.max_request_bytes = max_file_bytes, max_request_bytes
        self.clients: set[Client] = set()
        self.rejected = RateLimitedLog(log, "web")
        self.received = 0
        self.assets = assets()
        self._map: tuple[str, bytes] | None = None
        self._sent: dict = {}  # the snapshot as last sent to every client
        self._sent_at = 0.0
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._same_origin],
                              client_max_size=self.max_request_bytes + (1 << 16))
        get, post = web.get, web.post
        app.add_routes([
            get("/", self._index), get("/static/{name}", self._static),
            get("/ws", self._socket), get("/api/parameters", self._parameters),
            get("/api/map", self._latent_map), get("/api/coming", self._coming),
            post("/api/pair", self._pair),
            post("/api/upload", self._upload), post("/api/train", self._train),
            get("/api/models", self._models), get("/api/models/{name}/map.png", self._thumb),
            post("/api/models/{name}/rename", self._rename), post("/api/capture", self._capture),
            get("/api/captures/{name}", self._capture_file)])
        return app

    async def start(self) -> None:
        """Listen; a port in use is a one-line error."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise RvaedError(f"web: cannot listen on {self.host}:{self.port}: "
                             f"{exc.strerror or exc}") from None
        self.port = self._runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._map_json()),  # ready before a page asks
                       loop.create_task(self._feedback_loop())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(client.socket.close() for client in list(self.clients)),
                             return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def urls(self, host: str | None = None) -> tuple[str, str]:
        """The page's address, and the same carrying the key (for a browser opened here; the
        log names where the key is kept instead of printing it)."""
        base = f"http://{host or self.host}:{self.port}/"
        return base, f"{base}?key={self.secret.key}"

    # -- commands --------------------------------------------------------------------------

    def command(self, address: object, args: object, peer: tuple, at: int,
                trusted: bool) -> None:
        """Apply one command through the route table; ValueError says what was wrong."""
        if not isinstance(address, str) or not isinstance(args, list):
            raise ValueError("expected {\"a\": ADDRESS, \"v\": [ARGUMENTS]}")
        found = self.lookup(address) if address not in NOT_OVER_WEB else None
        if found is None:
            raise ValueError(f"unknown address {address[:80]!r}")
        route, owner = found
        if route.files and not trusted:
            raise ValueError(f"{address}: needs the session key (the URL rvaed printed, "
                             "or its pairing code)")
        try:
            route.handler(owner, peer, tuple(args), at)
        except RvaedError as exc:
            raise ValueError(f"{address}: {exc}") from None

    async def _feedback_loop(self) -> None:
        """Every ``FEEDBACK_INTERVAL``: the parts of the snapshot that changed, to everyone
        (at least every ``CLOCK_EVERY`` the clock, which anchors the playheads)."""
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL)
            if not self.clients:
                continue
            current = view.snapshot(self.hub, self.desk.extras())
            update = {k: v for k, v in current.items()
                      if k != "clock" and self._sent.get(k) != v}
            if update or time.monotonic() - self._sent_at >= CLOCK_EVERY:
                update["clock"] = current["clock"]
                self._sent, self._sent_at = current, time.monotonic()
                for client in self.clients:
                    client.offer(update)

    # -- HTTP handlers ---------------------------------------------------------------------

    @web.middleware
    async def _same_origin(self, request: web.Request, handler):
        origin = request.headers.get("Origin")
        changes = request.method != "GET" or request.path == "/ws"
        if changes and origin is not None and origin != f"{request.scheme}://{request.host}":
            self.rejected(f"request from another origin refused: {origin[:80]} "
                          f"({request.remote})")
            raise web.HTTPForbidden(text="cross-origin request refused")
        return await handler(request)

    def _trusted(self, request: web.Request) -> bool:
        return self.secret.valid(request.headers.get(KEY_HEADER) or request.query.get("key"))

    def _require_key(self, request: web.Request) -> None:
        if not self._trusted(request):
            self.rejected(f"{request.path}: refused without the session key "
                          f"({request.remote})")
            raise web.HTTPUnauthorized(text="this needs the session key: open the URL rvaed "
                                            "printed at start, or enter its pairing code")

    async def _index(self, request: web.Request) -> web.Response:
        return self._asset("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        return self._asset(request.match_info["name"])

    def _asset(self, name: str) -> web.Response:
        body = self.assets.get(name)
        if body is None:
            raise web.HTTPNotFound()
        kind = TYPES["." + name.rsplit(".", 1)[-1]]
        return web.Response(body=body, content_type=kind, headers={
            "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:"})

    async def _parameters(self, request: web.Request) -> web.Response:
        return web.json_response(view.parameter_table())

    async def _coming(self, request: web.Request) -> web.Response:
        """``?bars=N`` (1-16, default the phrase's or the loop's): the coming bars."""
        default = self.hub.state.phrase or self.hub.grid.bars
        try:
            bars = int(request.query.get("bars", default))
        except ValueError:
            raise web.HTTPBadRequest(text="bars: expected a whole number 1-16") from None
        if not 1 <= bars <= PHRASE_MAX:
            raise web.HTTPBadRequest(text=f"bars: expected 1-{PHRASE_MAX}, got {bars}")
        return web.json_response(view.coming(self.hub, bars))

    async def _latent_map(self, request: web.Request) -> web.Response:
        return web.Response(body=await self._map_json(), content_type="application/json")

    async def _map_json(self) -> bytes:
        """The current model's map over the pad's range (decoded off the loop once each)."""
        shown = view.map_id(self.hub)
        if self._map is None or self._map[0] != shown:
            data = await asyncio.to_thread(view.latent_map, self.hub.decoder, view.MAP_SIZE,
                                           self.hub.region)
            self._map = (shown, json.dumps({**data, "id": shown}).encode())
        return self._map[1]

    async def _pair(self, request: web.Request) -> web.Response:
        code = (await _json(request)).get("code")
        before = self.secret.code
        key = self.secret.pair(code)
        if self.secret.code != before:
            log.warning("web: too many wrong pairing codes; the new pairing code is %s",
                        self.secret.code)
        if key is None:
            self.rejected(f"wrong pairing code from {request.remote}")
            raise web.HTTPUnauthorized(text="wrong pairing code")
        return web.json_response({"key": key})

    async def _upload(self, request: web.Request) -> web.Response:
        self._require_key(request)
        files = await self._read_files(request)
        try:
            return web.json_response(await self.desk.upload(files))
        except RvaedError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    async def _read_files(self, request: web.Request) -> list[tuple[str, bytes]]:
        """The uploaded files (name, bytes), within the limits, or a 413 saying which."""
        reader = await request.multipart()
        files, total = [], 0
        while (part := await reader.next()) is not None:
            name = getattr(part, "filename", None) or "unnamed"
            data = await part.read_chunk(self.max_file_bytes + 1)  # type: ignore[union-attr]
            if len(data) > self.max_file_bytes or await part.read_chunk(1):  # type: ignore[union-attr]
                raise web.HTTPRequestEntityTooLarge(
                    max_size=self.max_file_bytes, actual_size=len(data),
                    text=f"{name}: more than limits.max_file_bytes ({self.max_file_bytes})")
            total += len(data)
            if total > self.max_request_bytes:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=self.max_request_bytes, actual_size=total,
                    text=f"more than limits.max_request_bytes ({self.max_request_bytes})")
            files.append((name, data))
        return files

    async def _train(self, request: web.Request) -> web.Response:
        self._require_key(request)
        batch = (await _json(request)).get("batch")
        try:
            self.desk.train(str(batch))
        except RvaedError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"ok": True})

    async def _models(self, request: web.Request) -> web.Response:
        self._require_key(request)
        return web.json_response(await self.desk.models())

    async def _thumb(self, request: web.Request) -> web.Response:
        self._require_key(request)
        try:
            png = await self.desk.thumbnail(request.match_info["name"])
        except RvaedError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        return web.Response(body=png, content_type="image/png")

    async def _rename(self, request: web.Request) -> web.Response:
        self._require_key(request)
        new = (await _json(request)).get("name")
        try:
            name = await self.desk.rename(request.match_info["name"], str(new))
        except RvaedError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"name": name})

    async def _capture(self, request: web.Request) -> web.Response:
        self._require_key(request)
        body = await _json(request)
        bars = body.get("bars")
        try:
            name = await self.desk.capture(None if bars is None else int(bars),
                                           body.get("coming") is True)
        except (RvaedError, ValueError, TypeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"file": name, "url": f"/api/captures/{name}"})

    async def _capture_file(self, request: web.Request) -> web.FileResponse:
        self._require_key(request)
        try:
            path = self.desk.capture_file(request.match_info["name"])
        except RvaedError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        return web.FileResponse(path, headers={
            "Content-Disposition": f'attachment; filename="{path.name}"'})

    # -- the WebSocket -----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        if len(self.clients) >= MAX_CLIENTS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_CLIENTS} pages at once")
        socket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, heartbeat=20,
                                       timeout=CLOSE_TIMEOUT)
        await socket.prepare(request)
        client = Client(socket, self._trusted(request))
        self.clients.add(client)
        sender = asyncio.get_running_loop().create_task(client.send_newest())
        client.tell(json.dumps({"t": "hello", "parameters": view.parameter_table(),
                                 "trusted": client.trusted}))
        client.offer(view.snapshot(self.hub, self.desk.extras()))
        peer = (request.remote or "?", 0)
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self._received(client, message.data, peer)
        finally:
            self.clients.discard(client)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return socket

    def _received(self, client: Client, text: str, peer: tuple) -> None:
        at = time.perf_counter_ns()
        self.received += 1
        try:
            message = json.loads(text)
            if not isinstance(message, dict):
                raise ValueError("expected a JSON object")
            self.command(message.get("a"), message.get("v", []), peer, at, client.trusted)
        except ValueError as exc:  # json's decode error is one too
            self.rejected(f"{exc} (from {peer[0]})")
            client.tell(json.dumps({"t": "error", "message": str(exc)}))


async def _json(request: web.Request) -> dict:
    """The request's JSON object body; 400 otherwise."""
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON body") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body
