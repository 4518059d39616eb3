"""A local OpenAI-compatible server for the browser tests: POST /v1/chat/completions with
`stream=true`, answered as server-sent events, chunk by chunk with a configurable delay.

A test scripts a reply by a word that the user's message contains (`on(trigger, Reply(...))`);
anything else gets a short echo. Each request is recorded, including whether the client hung
up before the reply was complete (what Stop must cause).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    chunks: list[str]
    delay: float = 0.02
    prompt_tokens: int = 12
    status: int = 200


@dataclass
class Call:
    user_text: str
    model: str
    stream: bool
    include_usage: bool
    chunks_sent: int = 0
    completed: bool = False
    hung_up: bool = False
    finished: threading.Event = field(default_factory=threading.Event)


def split_words(text: str) -> list[str]:
    """Chunks of a text as a model streams them: a word and its following space at a time."""
    pieces: list[str] = []
    current = ""
    for ch in text:
        current += ch
        if ch in " \n":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


class FakeOpenAI:
    def __init__(self) -> None:
        self.scripts: dict[str, Reply] = {}
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                owner._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def on(self, trigger: str, reply: Reply) -> None:
        with self._lock:
            self.scripts[trigger] = reply

    def call_for(self, trigger: str, timeout: float = 10) -> Call:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for call in self.calls:
                    if trigger in call.user_text:
                        return call
            time.sleep(0.05)
        raise AssertionError(f"the server never asked the model about {trigger!r}")

    def _reply_for(self, text: str) -> Reply:
        with self._lock:
            for trigger, reply in self.scripts.items():
                if trigger in text:
                    return reply
        return Reply(chunks=split_words(f"Echo: {text.split(': ', 1)[-1]}"))

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"{}")
        if request.path.rstrip("/") != "/v1/chat/completions":
            error = {"message": "not found", "type": "invalid_request_error"}
            self._json(request, 404, {"error": error})
            return
        messages = body.get("messages") or []
        user_text = next(
            (str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        call = Call(
            user_text=user_text,
            model=str(body.get("model")),
            stream=bool(body.get("stream")),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        )
        with self._lock:
            self.calls.append(call)
        reply = self._reply_for(user_text)
        try:
            if reply.status != 200:
                error = {"message": "scripted failure", "type": "server_error", "code": None}
                self._json(request, reply.status, {"error": error})
                return
            self._stream(request, call, reply)
        finally:
            call.finished.set()

    def _json(self, request: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _stream(self, request: BaseHTTPRequestHandler, call: Call, reply: Reply) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.send_header("Cache-Control", "no-cache")
        request.send_header("Connection", "close")
        request.end_headers()
        base = {
            "id": f"chatcmpl-{len(self.calls)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": call.model,
        }

        def event(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps({**base, **payload})
            request.wfile.write(f"data: {data}\n\n".encode())
            request.wfile.flush()

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        try:
            event(choice({"role": "assistant", "content": ""}))
            for piece in reply.chunks:
                time.sleep(reply.delay)
                event(choice({"content": piece}))
                call.chunks_sent += 1
            event(choice({}, "stop"))
            if call.include_usage:
                completion = len(reply.chunks)
                usage = {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": reply.prompt_tokens + completion,
                }
                event({"choices": [], "usage": usage})
            event("[DONE]")
            call.completed = True
        except (BrokenPipeError, ConnectionResetError):
            call.hung_up = True
