"""ai-streams: 1, 50 and 200 AI sessions streaming at once, on one process (PostgreSQL + Redis,
the default pub/sub layer; the full run repeats 200 on the list-based layer, unless
BENCH_AI_LISTS=0).

The upstream answers after a set time to first token at a set token rate (one chunk of four
characters per token). The time the server adds to the first token is the client's first
`ai_stream_delta` minus the moment the upstream wrote its first chunk (CLOCK_MONOTONIC in
both processes). CPU is the server process's user + system time over the run.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field

from bench import client, seed
from bench.context import Bench
from testkit.servers import REPO_DIR, provider_env

# BENCH_AI_LEVELS=200 runs one level only (when profiling, say).
LEVELS = tuple(int(n) for n in os.environ.get("BENCH_AI_LEVELS", "1,50,200").split(","))
FIRST_DELAY = 0.3
TOKENS_PER_SECOND = 50.0
# At 200 streams (issue 18): the time the server adds to the first token, at p99; every reply
# ends within END_RATIO_TARGET times the upstream's own duration; CPU per 1,000 tokens within
# CPU_RATIO_TARGET times the openai SDK alone reading the same replies in the same run.
TTFT_P99_TARGET_MS = 100.0
END_RATIO_TARGET = 1.5
CPU_RATIO_TARGET = 1.5
LISTS = os.environ.get("BENCH_AI_LISTS", "1") != "0"


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


async def _level(bench: Bench, sessions: int, tokens: int, layer: str = "pubsub") -> None:
    config = app_config(sessions) + (", list-based layer" if layer == "lists" else "")
    name = f"ai-streams-{sessions}" + ("-lists" if layer == "lists" else "")
    rooms = await asyncio.to_thread(seed.make_rooms, bench.prefix(), sessions, 1, ai_sessions=True)
    with (
        bench.upstream(first_delay=FIRST_DELAY, rate=TOKENS_PER_SECOND, tokens=tokens) as up,
        bench.servers(
            1,
            redis=True,
            name=name,
            **provider_env(up, LLM_TIMEOUT_SECONDS="30"),
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
        # Long enough to cover the replies of a server that falls behind as well.
        bench.start_profiles(procs, name, FIRST_DELAY + tokens / TOKENS_PER_SECOND * 3 + 5)

        async def ask(conn: client.ClientConnection, stream: Stream) -> None:
            stream.sent_at = time.monotonic()
            await conn.send(client.chat_frame(f"[{stream.tag}] 설명해줘"))

        await asyncio.gather(*(ask(c, s) for c, s in zip(conns, streams, strict=True)))
        # A server that falls behind still has to deliver every text whole: it is waited for
        # (up to a minute past the time the replies take), and the delay is reported.
        limit = FIRST_DELAY + tokens / TOKENS_PER_SECOND + 60
        await client.wait_until(lambda: all(s.done.is_set() for s in streams), limit)
        await asyncio.sleep(0.5)  # the upstream logs a stream after its last write
        cpu = server.cpu_seconds() - cpu_before
        bench.finish_profiles()
        await client.close_all(conns, readers)
        records = up.records()

    added = []
    for s in streams:
        record = records.get(s.tag)
        if record and record["first_chunk_at"] is not None and s.first_delta_at is not None:
            added.append((s.first_delta_at - record["first_chunk_at"]) * 1000)
    chunks = sum(r["chunks_sent"] for r in records.values())
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
    at_scale = sessions == 200 and layer == "pubsub"
    bench.add("ai-streams", config, "added TTFT p50", client.percentile(added, 50), "ms")
    bench.add(
        "ai-streams",
        config,
        "added TTFT p99",
        client.percentile(added, 99),
        "ms",
        at_most=TTFT_P99_TARGET_MS if at_scale else None,
    )
    ttft = [(s.first_delta_at - s.sent_at) * 1000 for s in streams if s.first_delta_at is not None]
    bench.add("ai-streams", config, "TTFT from send p50", client.percentile(ttft, 50), "ms")
    ends = [s.ended_at - s.sent_at for s in streams if s.ended_at is not None]
    upstream_alone = FIRST_DELAY + tokens / TOKENS_PER_SECOND
    last = max(ends) if len(ends) == len(streams) else float("nan")
    bench.add(
        "ai-streams",
        config,
        "last reply ended after",
        last,
        "s",
        target=f"upstream alone: {upstream_alone:.1f} s",
    )
    bench.add(
        "ai-streams",
        config,
        "last reply ended / upstream alone",
        last / upstream_alone,
        "x",
        at_most=END_RATIO_TARGET if at_scale else None,
    )
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


def app_config(sessions: int) -> str:
    return f"{sessions} concurrent streams"


def sdk_config(sessions: int) -> str:
    return f"{sessions} streams, openai SDK alone"


async def _sdk_alone(bench: Bench, sessions: int, tokens: int) -> None:
    """The same replies read by a bare AsyncOpenAI client in a process of its own: the CPU and
    first-token delay that receiving the chunks costs before the app does anything with them."""
    out = bench.logs / f"sdk-streams-{sessions}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with bench.upstream(first_delay=FIRST_DELAY, rate=TOKENS_PER_SECOND, tokens=tokens) as up:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.baselines.sdk_streams",
            "--base-url",
            up.base_url,
            "--api-key",
            up.api_key,
            "--streams",
            str(sessions),
            "--out",
            str(out),
            cwd=REPO_DIR,
        )
        limit = FIRST_DELAY + tokens / TOKENS_PER_SECOND + 60
        try:
            await asyncio.wait_for(proc.wait(), limit + 20)
        finally:
            if proc.returncode is None:
                proc.kill()
        await asyncio.sleep(0.5)  # the upstream logs a stream after its last write
        records = up.records()
    result = json.loads(out.read_text())
    config = sdk_config(sessions)
    added = [
        (got["first_delta"] - records[tag]["first_chunk_at"]) * 1000
        for tag, got in result["streams"].items()
        if "first_delta" in got and records.get(tag, {}).get("first_chunk_at") is not None
    ]
    chunks = sum(records[tag]["chunks_sent"] for tag in result["streams"] if tag in records)
    wrong = [
        tag
        for tag, got in result["streams"].items()
        if tag not in records or got.get("text") != records[tag]["text"]
    ]
    for q in (50, 99):
        bench.add("ai-streams", config, f"added TTFT p{q}", client.percentile(added, q), "ms")
    bench.add(
        "ai-streams",
        config,
        "CPU per 1,000 tokens",
        result["cpu_seconds"] / max(chunks, 1) * 1000,
        "s",
    )
    bench.add("ai-streams", config, "texts not as sent", float(len(wrong)), "streams")


async def run(bench: Bench) -> None:
    tokens = 40 if bench.quick else 100
    for sessions in LEVELS:
        print(f"ai-streams: {sessions}", flush=True)
        await _level(bench, sessions, tokens)
        print(f"ai-streams: {sessions}, openai SDK alone", flush=True)
        await _sdk_alone(bench, sessions, tokens)
        app = bench.find("ai-streams", app_config(sessions), "CPU per 1,000 tokens")
        floor = bench.find("ai-streams", sdk_config(sessions), "CPU per 1,000 tokens")
        if app is not None and floor:
            bench.add(
                "ai-streams",
                app_config(sessions),
                "CPU per 1,000 tokens / openai SDK alone",
                app / floor,
                "x",
                at_most=CPU_RATIO_TARGET if sessions == 200 else None,
            )
    if 200 in LEVELS and not bench.quick and LISTS:
        print("ai-streams: 200 on the list-based layer", flush=True)
        await _level(bench, 200, tokens, layer="lists")
