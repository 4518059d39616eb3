"""The benchmark's OpenAI-compatible upstream, in a process of its own.

It is the test suite's `FakeUpstream` with a set time to first token and token rate, whose
reply to each request is known in advance from a tag in the user's message (so the client can
check every final text), and which logs, per request, when its first chunk left (CLOCK_MONOTONIC,
comparable with the client's clock: same machine) as one JSON line.

    python -m bench.upstream --port 8765 --first-delay 0.3 --rate 50 --tokens 100 --log up.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

SERVER_DIR = Path(__file__).resolve().parent.parent / "server"
if str(SERVER_DIR) not in sys.path:
    sys.path.insert(0, str(SERVER_DIR))

from llm.tests.upstream import Behavior, FakeUpstream  # noqa: E402

TAG = re.compile(r"\[(s\d+)\]")
CHUNK_CHARS = 4


def reply_text(tag: str, tokens: int) -> str:
    """The reply to the message tagged `tag`: `tokens` chunks of CHUNK_CHARS characters."""
    body = "".join(f"{tag}:{i:04d}-" for i in range(tokens))
    text = f"<{tag}>" + body
    return text[: tokens * CHUNK_CHARS]


class _StampedWriter:
    """Passes writes through, noting when the first reply chunk (the second write) leaves."""

    def __init__(self, writer: asyncio.StreamWriter, on_first: Any) -> None:
        self._writer = writer
        self._writes = 0
        self._on_first = on_first
        self.transport = writer.transport

    def write(self, data: bytes) -> None:
        self._writes += 1
        if self._writes == 2:  # the response head is the first write
            self._on_first()
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()


class BenchUpstream(FakeUpstream):
    def __init__(self, *, first_delay: float, rate: float, tokens: int, log: Path) -> None:
        super().__init__()
        self.template = Behavior(chunk_chars=CHUNK_CHARS, first_delay=first_delay, delay=1.0 / rate)
        self.tokens = tokens
        self.log = log.open("a", buffering=1)

    async def _stream(
        self, writer: asyncio.StreamWriter, body: dict[str, Any], behavior: Behavior
    ) -> None:
        content = str(body["messages"][-1]["content"])
        match = TAG.search(content)
        tag = match.group(1) if match else "untagged"
        text = reply_text(tag, self.tokens)
        record: dict[str, Any] = {"tag": tag, "received": time.monotonic(), "text": text}

        def first() -> None:
            record["first_chunk"] = time.monotonic()

        reply = Behavior(
            text=text,
            chunk_chars=CHUNK_CHARS,
            first_delay=self.template.first_delay,
            delay=self.template.delay,
        )
        try:
            await super()._stream(_StampedWriter(writer, first), body, reply)  # type: ignore[arg-type]
            record["ended"] = time.monotonic()
        finally:
            record["chunks"] = len(self._chunks(reply))
            self.log.write(json.dumps(record) + "\n")


async def _serve(args: argparse.Namespace) -> None:
    up = BenchUpstream(
        first_delay=args.first_delay, rate=args.rate, tokens=args.tokens, log=Path(args.log)
    )
    await up.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await up.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-delay", type=float, default=0.3)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    import uvloop

    uvloop.run(_serve(args))


if __name__ == "__main__":
    main()
