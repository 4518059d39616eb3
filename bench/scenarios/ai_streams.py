"""ai-streams: 1, 50 and 200 AI sessions streaming at once, on one process (PostgreSQL + Redis).

The upstream answers after a set time to first token at a set token rate (one chunk of four
characters per token). The time the server adds to the first token is the client's first
`ai_stream_delta` minus the moment the upstream wrote its first chunk (CLOCK_MONOTONIC in
both processes). CPU is the server process's user + system time over the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field

from bench import client, seed
from bench.context import Bench

# BENCH_AI_LEVELS=200 runs one level only (when profiling, say).
LEVELS = tuple(int(n) for n in os.environ.get("BENCH_AI_LEVELS", "1,50,200").split(","))
FIRST_DELAY = 0.3
TOKENS_PER_SECOND = 50.0
TTFT_P50_TARGET_MS = 5.0
TTFT_P99_TARGET_MS = 30.0


@dataclass
class Stream:
    tag: str
    sent_at: float = 0.0
    first_delta_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    frames: int = 0
    text: str = ""
    final: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def on_text(self, raw: str, _now: int) -> None:
        now = time.monotonic()
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "ai_stream_start":
            self.started_at = now
            self.text = frame["text"]
        elif kind == "ai_stream_delta":
            if self.first_delta_at is None:
                self.first_delta_at = now
            self.frames += 1
            self.text += frame["delta"]
        elif kind == "ai_stream_end":
            self.ended_at = now
        elif kind == "chat_message" and frame.get("is_ai"):
            self.final = frame["message"]
            self.done.set()


async def _level(bench: Bench, sessions: int, tokens: int, layer: str = "lists") -> None:
    config = f"{sessions} concurrent streams" + (", pub/sub layer" if layer == "pubsub" else "")
    rooms = await asyncio.to_thread(seed.make_rooms, bench.prefix(), sessions, 1, ai_sessions=True)
    with (
        bench.upstream(first_delay=FIRST_DELAY, rate=TOKENS_PER_SECOND, tokens=tokens) as up,
        bench.servers(
            1,
            redis=True,
            name=f"ai-streams-{sessions}",
            LLM_PROVIDER="openai",
            OPENAI_API_KEY=up.api_key,
            OPENAI_BASE_URL=up.base_url,
            LLM_MODEL="gpt-4o-mini",
            LLM_MAX_RETRIES="0",
            LLM_TIMEOUT_SECONDS="30",
            REDIS_CHANNEL_LAYER=layer,
        ) as procs,
    ):
        server = procs[0]
        conns = await client.open_many(
            [(f"{server.ws_url}/ws/llm/{r.session_id}/", r.members[0].cookie) for r in rooms]
        )
        for conn in conns:  # the greeting
            await asyncio.wait_for(conn.recv(), 10)
        streams = [Stream(tag=f"s{i}") for i in range(sessions)]
        readers = [client.reader(c, s.on_text) for c, s in zip(conns, streams, strict=True)]
        cpu_before = server.cpu_seconds()
        bench.start_profiles(
            procs, f"ai-streams-{sessions}", FIRST_DELAY + tokens / TOKENS_PER_SECOND * 2 + 2
        )

        async def ask(conn: client.ClientConnection, stream: Stream) -> None:
            stream.sent_at = time.monotonic()
            await conn.send(client.chat_frame(f"[{stream.tag}] 설명해줘"))

        await asyncio.gather(*(ask(c, s) for c, s in zip(conns, streams, strict=True)))
        # Long enough for a server that keeps up (a reply takes tokens / rate seconds); one
        # that does not is reported by the texts that had not arrived.
        limit = FIRST_DELAY + tokens / TOKENS_PER_SECOND * 3 + 10
        await client.wait_until(lambda: all(s.done.is_set() for s in streams), limit)
        await asyncio.sleep(0.5)  # the upstream logs a stream after its last write
        cpu = server.cpu_seconds() - cpu_before
        bench.finish_profiles()
        for task in readers:
            task.cancel()
        await client.close_all(conns)
        records = {r["tag"]: r for r in up.records()}

    added = []
    for s in streams:
        record = records.get(s.tag)
        if record and "first_chunk" in record and s.first_delta_at is not None:
            added.append((s.first_delta_at - record["first_chunk"]) * 1000)
    chunks = sum(r.get("chunks", 0) for r in records.values())
    wrong = [
        s
        for s in streams
        if s.tag not in records or s.final != records[s.tag]["text"] or s.text != s.final
    ]
    if wrong:  # kept for a look at what went missing
        with (bench.logs / f"ai-streams-{sessions}-wrong.jsonl").open("w") as out:
            for s in wrong:
                expected = records.get(s.tag, {}).get("text")
                out.write(
                    json.dumps(
                        {
                            "tag": s.tag,
                            "expected": expected,
                            "final": s.final,
                            "streamed": s.text,
                            "done": s.done.is_set(),
                        }
                    )
                    + "\n"
                )
    rates = [
        s.frames / (s.ended_at - s.started_at)
        for s in streams
        if s.started_at is not None and s.ended_at is not None and s.ended_at > s.started_at
    ]
    at_scale = sessions == 200 and layer == "lists"
    p50 = client.percentile(added, 50)
    p99 = client.percentile(added, 99)
    bench.add(
        "ai-streams",
        config,
        "added TTFT p50",
        p50,
        "ms",
        target=f"<= {TTFT_P50_TARGET_MS:.0f} ms" if at_scale else "",
        ok=(p50 <= TTFT_P50_TARGET_MS) if at_scale else None,
    )
    bench.add(
        "ai-streams",
        config,
        "added TTFT p99",
        p99,
        "ms",
        target=f"<= {TTFT_P99_TARGET_MS:.0f} ms" if at_scale else "",
        ok=(p99 <= TTFT_P99_TARGET_MS) if at_scale else None,
    )
    ttft = [(s.first_delta_at - s.sent_at) * 1000 for s in streams if s.first_delta_at is not None]
    bench.add("ai-streams", config, "TTFT from send p50", client.percentile(ttft, 50), "ms")
    bench.add("ai-streams", config, "CPU per 1,000 tokens", cpu / max(chunks, 1) * 1000, "s")
    bench.add("ai-streams", config, "frames/s per member", sum(rates) / max(len(rates), 1), "/s")
    bench.add(
        "ai-streams",
        config,
        "texts not as sent",
        float(len(wrong)),
        "streams",
        target="0",
        ok=not wrong,
    )


async def run(bench: Bench) -> None:
    tokens = 40 if bench.quick else 100
    for sessions in LEVELS:
        print(f"ai-streams: {sessions}", flush=True)
        await _level(bench, sessions, tokens)
    if 200 in LEVELS and not bench.quick:
        print("ai-streams: 200 on the pub/sub layer", flush=True)
        await _level(bench, 200, tokens, layer="pubsub")
