"""Local fakes of the outbox's destinations, on loopback: a webhook receiver that verifies the Standard
Webhooks signature, and Square's create-order endpoint as the official SDK calls it."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"a test secret of thirty-two byte").decode()
SQUARE_TOKEN = "test-square-token"
SQUARE_LOCATION = "LOC-TEST-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        self.routes(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError


class WebhookReceiver(_Server):
    """Accepts signed orders at /orders; keeps each order once by its webhook-id, as a receiver should."""

    def __init__(self, port: int | None = None, *, status: int = 200) -> None:
        super().__init__(port)
        self.status = status
        self.requests = 0
        self.bad_signatures = 0
        self.orders: dict[str, dict[str, Any]] = {}
        self.hold: asyncio.Event | None = None  # set: requests wait for it before answering
        self.held = asyncio.Event()

    @property
    def endpoint(self) -> str:
        return f"{self.url}/orders"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/orders", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        try:
            payload = Webhook(SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.hold is not None and not self.hold.is_set():
            self.held.set()
            await self.hold.wait()
        if self.status < 300:
            self.orders.setdefault(request.headers["webhook-id"], payload)
        return web.Response(status=self.status)


class FakeSquare(_Server):
    """``POST /v2/orders`` as Square answers it: one order per idempotency key, a repeat gets the same one."""

    def __init__(self, *, status: int = 200) -> None:
        super().__init__()
        self.status = status  # not 200: every request gets this status (an outage, a refusal)
        self.requests: list[dict[str, Any]] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.unauthorized = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/orders", self.create_order)

    async def create_order(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SQUARE_TOKEN}":
            self.unauthorized += 1
            errors = [{"category": "AUTHENTICATION_ERROR", "code": "UNAUTHORIZED"}]
            return web.json_response({"errors": errors}, status=401)
        body = await request.json()
        self.requests.append(body)
        if self.status != 200:
            errors = [{"category": "API_ERROR", "code": "SERVICE_UNAVAILABLE"}]
            return web.json_response({"errors": errors}, status=self.status)
        key = body["idempotency_key"]
        if key not in self.orders:
            self.orders[key] = {**body["order"], "id": f"SQ{len(self.orders) + 1}", "state": "OPEN", "version": 1}
        return web.json_response({"order": self.orders[key]})


async def until(check: Callable[[], Awaitable[bool]], within: float = 60.0, every: float = 0.05) -> None:
    """Wait until ``check`` holds (a state of the database, which sends no events), within a generous bound."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(every)
