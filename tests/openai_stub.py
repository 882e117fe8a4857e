"""A tiny OpenAI-compatible chat-completions server on loopback, answering from a script."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Forever:
    """A reply that never ends: ``text`` again and again until the client hangs up."""

    text: str = "la "


@dataclass(frozen=True)
class Silent:
    """A reply whose stream opens and then sends nothing, not even a first token."""


Reply = str | dict[str, Any] | Forever | Silent


class OpenAIStub:
    """Serves POST /v1/chat/completions (streaming); each request takes the next scripted reply.

    A reply is a string (the assistant's text, sent in pieces of ``piece`` characters if given), a dict
    {"tool": name, "arguments": {...}}, ``Forever`` or ``Silent``. A request that asks for usage
    (``stream_options.include_usage``) gets it after a reply that ends, as ``usage`` records:
    prompt tokens from the request's size, half of them cached, completion tokens from the reply's
    (unless ``reports_usage`` is False: some servers never report it).
    """

    def __init__(self, replies: list[Reply], *, piece: int | None = None, reports_usage: bool = True) -> None:
        self.replies = deque(replies)
        self.requests: list[dict[str, Any]] = []
        self.usage: list[dict[str, int]] = []  # what it reported, request by request
        self.closed = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                n = len(stub.requests)
                reply = stub.replies.popleft() if stub.replies else "Anything else?"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    if isinstance(reply, Silent):
                        stub.closed.wait()
                        return
                    if isinstance(reply, Forever):
                        while not stub.closed.wait(0.002):
                            self._send(_text_chunk(reply.text, n))
                        return
                    for chunk in _chunks(reply, n, piece):
                        self._send(chunk)
                    if reports_usage and (body.get("stream_options") or {}).get("include_usage"):
                        usage = _usage(body, reply)
                        stub.usage.append(usage)
                        self._send({**_base(n), "choices": [], "usage": _usage_json(usage)})
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client hung up: what a cut-off reply looks like from here

            def _send(self, chunk: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self._server.shutdown()
        self._server.server_close()


def _base(n: int) -> dict[str, Any]:
    return {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": 0, "model": "stub"}


def _text_chunk(text: str, n: int) -> dict[str, Any]:
    return {
        **_base(n),
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}],
    }


def _usage(body: dict[str, Any], reply: str | dict[str, Any]) -> dict[str, int]:
    prompt = len(json.dumps(body["messages"])) // 4 + len(json.dumps(body.get("tools", []))) // 4
    completion = max(1, len(json.dumps(reply)) // 4)
    return {"prompt": prompt, "cached": prompt // 2, "completion": completion}


def _usage_json(usage: dict[str, int]) -> dict[str, Any]:
    return {
        "prompt_tokens": usage["prompt"],
        "completion_tokens": usage["completion"],
        "total_tokens": usage["prompt"] + usage["completion"],
        "prompt_tokens_details": {"cached_tokens": usage["cached"]},
    }


def _chunks(reply: str | dict[str, Any], n: int, piece: int | None) -> list[dict[str, Any]]:
    base = _base(n)
    if isinstance(reply, str):
        size = piece or max(1, len(reply))
        pieces = [_text_chunk(reply[at : at + size], n) for at in range(0, len(reply), size)] or [_text_chunk("", n)]
        finish = "stop"
    else:
        delta = {
            "role": "assistant",
            "tool_calls": [
                {
                    "index": 0,
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": reply["tool"], "arguments": json.dumps(reply.get("arguments", {}))},
                }
            ],
        }
        pieces = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}]
        finish = "tool_calls"
    return [*pieces, {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}]
