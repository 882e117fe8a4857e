"""Debian's headless Chromium, driven over the DevTools protocol: open pages, read them, take pictures.

Used by the dashboard's browser test and by ``scripts/dashboard_screenshot.py``. Chromium is
started with ``--headless --no-sandbox --disable-gpu --disable-background-networking`` and a
throw-away profile, on loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CHROMIUM_NAMES = ("chromium", "chromium-browser")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
START_TIMEOUT_S = 60.0


def chromium_path() -> str | None:
    """The Chromium on PATH (Debian's ``chromium`` package), or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@dataclass
class Page:
    """One tab, attached through the browser's DevTools connection."""

    ws: aiohttp.ClientWebSocketResponse
    session: str
    _ids: itertools.count[int]
    _waiting: dict[int, asyncio.Future[dict[str, Any]]]
    _events: dict[str, list[asyncio.Future[dict[str, Any]]]]
    exceptions: list[str] = field(default_factory=list)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        message = {"id": message_id, "method": method, "params": params, "sessionId": self.session}
        await self.ws.send_str(json.dumps(message))
        return await future

    async def goto(self, url: str, *, within_s: float = 30.0) -> None:
        """Open ``url`` and wait for its load event."""
        loaded: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.setdefault("Page.loadEventFired", []).append(loaded)
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded, within_s)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"JavaScript error: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, *, within_s: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy (or ``within_s`` passed); returns its value."""
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            value = await self.evaluate(expression)
            if value or asyncio.get_running_loop().time() > deadline:
                return value
            await asyncio.sleep(0.1)

    async def screenshot(self, *, width: int, height: int) -> bytes:
        """A PNG of the whole page, ``width`` CSS pixels wide (``height`` the viewport's)."""
        await self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False
        )
        await asyncio.sleep(0.5)  # let the charts follow the new width
        reply = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(reply["data"])


@asynccontextmanager
async def browser(*, width: int = 1400, height: int = 1000) -> AsyncIterator[Page]:
    """Start headless Chromium and yield one page; Chromium is stopped and its profile removed after."""
    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError("Chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="memory-agent-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            executable,
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={width},{height}",
            "about:blank",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            url = await asyncio.wait_for(_devtools_url(process), START_TIMEOUT_S)
            async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
                yield await _open_page(ws)
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _devtools_url(process: asyncio.subprocess.Process) -> str:
    assert process.stderr is not None
    seen = []
    while line := await process.stderr.readline():
        text = line.decode(errors="replace")
        seen.append(text)
        if match := _LISTENING.search(text):
            asyncio.get_running_loop().create_task(_drain(process.stderr))
            return match.group(1)
    raise RuntimeError("Chromium stopped before it listened: " + "".join(seen[-5:]))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def _open_page(ws: aiohttp.ClientWebSocketResponse) -> Page:
    ids = itertools.count(1)
    waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
    events: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
    exceptions: list[str] = []

    async def browser_call(method: str, **params: Any) -> dict[str, Any]:
        message_id = next(ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiting[message_id] = future
        await ws.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        return await future

    async def read() -> None:
        async for message in ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in waiting:
                future = waiting.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools: {data['error'].get('message')}"))
                else:
                    future.set_result(data.get("result", {}))
            elif data.get("method") == "Runtime.exceptionThrown":
                details = data["params"]["exceptionDetails"]
                exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif data.get("method") in events:
                for future in events.pop(data["method"]):
                    if not future.done():
                        future.set_result(data.get("params", {}))

    asyncio.get_running_loop().create_task(read())
    target = await browser_call("Target.createTarget", url="about:blank")
    attached = await browser_call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
    page = Page(ws, attached["sessionId"], ids, waiting, events, exceptions)
    await page.send("Page.enable")
    await page.send("Runtime.enable")
    return page
