"""Before the worker starts: one handshake with LiveKit, so a wrong key or a silent server is named at once."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import aiohttp
from livekit import api


class LiveKitRefused(Exception):
    """The server answered and refused the worker's credentials (not worth retrying)."""


class LiveKitUnreachable(Exception):
    """The server took the connection but did not answer the handshake in time."""


def agent_url(url: str) -> str:
    """The worker's WebSocket endpoint, as LiveKit's worker derives it from LIVEKIT_URL."""
    parsed = urlparse(url)
    scheme = parsed.scheme.replace("http", "ws", 1) if parsed.scheme.startswith("http") else parsed.scheme
    return f"{scheme}://{parsed.netloc}{parsed.path}".rstrip("/") + "/agent"


async def check_livekit(url: str, key: str, secret: str, *, timeout_s: float) -> None:
    """Open and close the worker's WebSocket the way LiveKit's worker does, without registering.

    A refused key or secret raises ``LiveKitRefused``; a server that accepts the connection but does
    not answer the handshake within ``timeout_s`` raises ``LiveKitUnreachable``. Anything else (no
    server listening yet, another HTTP status) is left to the worker, which retries and reports it.
    """
    token = api.AccessToken(key, secret).with_grants(api.VideoGrants(agent=True)).to_jwt()
    async with aiohttp.ClientSession() as http:
        try:
            async with asyncio.timeout(timeout_s):
                ws = await http.ws_connect(agent_url(url), headers={"Authorization": f"Bearer {token}"})
            await ws.close()
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise LiveKitRefused(
                    f"LiveKit at {url} refused the worker's credentials (HTTP {exc.status}):"
                    " check LIVEKIT_API_KEY and LIVEKIT_API_SECRET"
                ) from None
        except TimeoutError:
            raise LiveKitUnreachable(
                f"LiveKit at {url} did not answer the worker's handshake within {timeout_s:g} s"
                " (connect timeout): check LIVEKIT_URL, and that a LiveKit server answers there"
            ) from None
        except aiohttp.ClientError:
            pass
