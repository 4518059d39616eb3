"""The floor under ai-streams: N concurrent replies read straight through the openai SDK, with
no server, no database, no channel layer and no sockets: what one Python process pays just to
receive the chunks the app must relay.

    python -m bench.baselines.sdk_streams --base-url URL --api-key KEY --streams 200 --out r.json

Writes, per stream, when its first content chunk arrived (CLOCK_MONOTONIC, comparable with the
upstream's log) and the text, and the process's CPU seconds over the streaming.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

import openai


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _one(client: openai.AsyncOpenAI, tag: str, record: dict[str, Any]) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"[{tag}] 설명해줘"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if not parts:
                record["first_delta"] = time.monotonic()
            parts.append(chunk.choices[0].delta.content)
    record["text"] = "".join(parts)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    client = openai.AsyncOpenAI(api_key=args.api_key, base_url=args.base_url, max_retries=0)
    records: dict[str, dict[str, Any]] = {f"s{i}": {} for i in range(args.streams)}
    # One warm-up reply outside the measurement (imports, the first connection).
    await _one(client, "warmup", {})
    cpu0 = _cpu_seconds()
    started = time.monotonic()
    await asyncio.gather(*(_one(client, tag, rec) for tag, rec in records.items()))
    return {
        "cpu_seconds": _cpu_seconds() - cpu0,
        "seconds": time.monotonic() - started,
        "streams": records,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(_run(args))
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
