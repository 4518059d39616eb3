"""Run the benchmarks: `python -m bench [--quick] [scenario ...]` from the repository root.

Starts real server processes on loopback ports over a benchmark database of its own
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/chat_bench_<run>, created,
migrated and dropped at the end; a `sqlite:///` URL runs the servers on SQLite, as `make run`
does) and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/6),
drives them from this process, prints one
table and writes bench/results/<run>/results.json and results.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path

from bench.context import RESULTS_DIR, Bench, Result, _fmt, as_dicts
from bench.scenarios import fanout

SCENARIOS = {
    "fanout": "bench.scenarios.fanout",
    "throughput": "bench.scenarios.throughput",
    "ai-streams": "bench.scenarios.ai_streams",
    "idle": "bench.scenarios.idle",
    "search": "bench.scenarios.search",
    "typing": "bench.scenarios.typing",
}


def raise_open_files() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ratios(bench: Bench) -> None:
    """The app against its peers, from figures of this same run."""

    def ratio(
        name: str, num: float | None, den: float | None, target: str = "", ok: bool | None = None
    ) -> None:
        if num is not None and den:
            bench.add("ratios", name, "ratio", num / den, "x", target, ok)

    for rate in fanout.RATES + fanout.HIGH_RATES:
        app = bench.find("fanout", "app, 1 process, in-memory layer", f"{rate} msg/s p99")
        ceiling = bench.find("fanout", "bare websockets broadcast", f"{rate} msg/s p99")
        for peer in ("minimal Channels chat", "bare websockets broadcast"):
            ratio(
                f"fanout p99 {rate}/s: app / {peer}",
                app,
                bench.find("fanout", peer, f"{rate} msg/s p99"),
            )
        for name, processes in (
            ("app, 1 process, in-memory layer", 1),
            ("app, 2 processes, Redis layer", 2),
            ("app, 1 process, DEBUG on", 1),
        ):
            limit = fanout.CEILING_RATIO_TARGET.get((rate, processes))
            p99 = bench.find("fanout", name, f"{rate} msg/s p99")
            if limit is None or p99 is None or not ceiling:
                continue
            ratio(
                f"fanout p99 {rate}/s: {name} / bare websockets",
                p99,
                ceiling,
                f"<= {limit}",
                p99 / ceiling <= limit,
            )
        daphne = bench.find("fanout", "app, 1 process, daphne", f"{rate} msg/s p99")
        ratio(f"fanout p99 {rate}/s: daphne / uvicorn", daphne, app)
    app_tp = bench.find("throughput", "app, 1 process, Redis layer", "accepted/s")
    base_tp = bench.find("throughput", "minimal Channels chat", "accepted/s")
    if app_tp is not None and base_tp:
        ratio(
            "throughput: app / minimal Channels", app_tp, base_tp, ">= 0.5", app_tp / base_tp >= 0.5
        )
    daphne_tp = bench.find("throughput", "app, 1 process, daphne", "accepted/s")
    ratio("throughput: daphne / uvicorn", daphne_tp, app_tp)


def table(results: list[Result]) -> str:
    rows = [("scenario", "configuration", "metric", "value", "unit", "target", "")]
    for r in results:
        mark = "" if r.ok is None else ("ok" if r.ok else "MISSED")
        rows.append((r.scenario, r.config, r.metric, _fmt(r.value), r.unit, r.target, mark))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i == 3 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="shorter runs, under 3 minutes")
    profiling = parser.add_mutually_exclusive_group()
    profiling.add_argument(
        "--profile",
        action="store_const",
        const="wall",
        help="sample every running thread of the servers with py-spy while measured",
    )
    profiling.add_argument(
        "--profile-gil",
        dest="profile",
        action="store_const",
        const="gil",
        help="sample only the thread holding the GIL: where the servers' CPU goes",
    )
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[])
    args = parser.parse_args()
    chosen = args.scenarios or list(SCENARIOS)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    bench = Bench(quick=args.quick, profile=args.profile)
    fds = raise_open_files()
    started = time.time()
    load = os.getloadavg()
    print(
        f"bench {bench.run_id}: {', '.join(chosen)}{' (quick)' if args.quick else ''}; "
        f"open files {fds}; load {load[0]:.2f}",
        flush=True,
    )
    bench.prepare_database()
    import uvloop

    failed = []
    try:
        for name in chosen:
            try:
                uvloop.run(importlib.import_module(SCENARIOS[name]).run(bench))
            except Exception as exc:
                # The other scenarios' figures still count; the table says what is missing.
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
                print(f"{name} failed: {exc!r}", flush=True)
    finally:
        bench.drop_database()
    ratios(bench)

    text = table(bench.results)
    print()
    print(text)
    out = RESULTS_DIR / bench.run_id
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": command,
        "failed": failed,
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "seconds": round(time.time() - started),
        "load_before": load,
        "load_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "results": as_dicts(bench.results)}, indent=1)
    )
    (out / "results.md").write_text(
        f"`{command}` ({meta['started']}, {meta['seconds']} s)\n\n{text}\n"
    )
    latest = RESULTS_DIR / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(Path(bench.run_id))
    print(f"\n{meta['seconds']} s; results in {out}")
    missed = [f"{r.config}: {r.metric}" for r in bench.results if r.ok is False]
    print("targets missed: " + ("; ".join(missed) if missed else "none"))
    if failed:
        print("scenarios that failed: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
