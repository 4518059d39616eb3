"""What every scenario shares: the benchmark database and Redis, server processes of the app
and of its peers, the upstream, and the table of results."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import seed
from testkit.servers import REPO_DIR, ServerProcess, app_env, child_env
from testkit.upstream import API_KEY, read_log

RESULTS_DIR = REPO_DIR / "bench" / "results"
# A database of the run's own (created, migrated, dropped at the end), so that two runs on one
# machine cannot drop each other's.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chat_bench_{run}"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/6"


@dataclass
class Result:
    scenario: str
    config: str
    metric: str
    value: float
    unit: str = ""
    target: str = ""
    ok: bool | None = None


@dataclass
class Bench:
    quick: bool
    database_url: str = ""
    redis_url: str = field(
        default_factory=lambda: os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    )
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S"))
    results: list[Result] = field(default_factory=list)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(40))
    profile: str | None = None  # None, "wall" or "gil"
    _names: int = 0
    _profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return RESULTS_DIR / self.run_id / "logs"

    def add(
        self,
        scenario: str,
        config: str,
        metric: str,
        value: float,
        unit: str = "",
        target: str = "",
        ok: bool | None = None,
        *,
        at_most: float | None = None,
        at_least: float | None = None,
    ) -> Result:
        """Record a figure; `at_most` / `at_least` make it a target (written and checked)."""
        if at_most is not None:
            target, ok = f"<= {_fmt(at_most)} {unit}".rstrip(), value <= at_most
        if at_least is not None:
            target, ok = f">= {_fmt(at_least)} {unit}".rstrip(), value >= at_least
        result = Result(scenario, config, metric, value, unit, target, ok)
        self.results.append(result)
        print(f"  {config:<44} {metric:<30} {_fmt(value)} {unit}", flush=True)
        return result

    def find(self, scenario: str, config: str, metric: str) -> float | None:
        for r in self.results:
            if (r.scenario, r.config, r.metric) == (scenario, config, metric):
                return r.value
        return None

    def prefix(self) -> str:
        """A fresh username prefix (every scenario makes its own users)."""
        self._names += 1
        return f"b{self._names}u"

    def start_profiles(self, procs: list[ServerProcess], name: str, seconds: float) -> None:
        """With --profile: sample each server process with py-spy for `seconds` (collapsed
        stacks in results/<run>/profiles/, one line per stack, for flame graphs). "wall" samples
        every running thread (database threads waiting on a round trip included); "gil" only
        the thread holding the interpreter lock, which is where a process's CPU goes."""
        if not self.profile:
            return
        out = RESULTS_DIR / self.run_id / "profiles"
        out.mkdir(parents=True, exist_ok=True)
        py_spy = Path(sys.executable).parent / "py-spy"
        for i, proc in enumerate(procs):
            self._profilers.append(
                subprocess.Popen(  # noqa: S603 - the venv's py-spy on our own child
                    [
                        str(py_spy),
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--duration",
                        str(max(1, int(seconds))),
                        "--format",
                        "raw",
                        "--nonblocking",
                        *(["--gil"] if self.profile == "gil" else []),
                        "--output",
                        str(out / f"{name}-{i}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def finish_profiles(self) -> None:
        for profiler in self._profilers:
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.kill()
        self._profilers.clear()

    # --- the app's server processes --------------------------------------------------------
    def env(self, *, redis: bool, **extra: str) -> dict[str, str]:
        return app_env(
            database_url=self.database_url,
            redis_url=self.redis_url if redis else "",
            prefix=f"bench{self.run_id}",
            secret_key=self.secret_key,
            CHAT_USER_RATE="1000000/minute",
            LLM_USER_RATE="1000000/minute",
            MAX_SOCKETS_PER_USER="100",
            **extra,
        )

    def __post_init__(self) -> None:
        if not self.database_url:
            url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
            self.database_url = url.format(run=self.run_id.replace("-", "_"))

    @property
    def sqlite_file(self) -> Path | None:
        """The database file when BENCH_DATABASE_URL names SQLite (`sqlite:////tmp/b.db`, as
        `make run` uses by default), else None."""
        if not self.database_url.startswith("sqlite:"):
            return None
        return Path(self.database_url.split(":///", 1)[1])

    def drop_database(self) -> None:
        import psycopg
        from django.db import connections

        connections.close_all()
        if self.sqlite_file is not None:
            _remove_sqlite(self.sqlite_file)
            return
        base, name = self.database_url.rsplit("/", 1)
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def prepare_database(self) -> None:
        """A fresh benchmark database, migrated; Django set up in this process for seeding."""
        if self.sqlite_file is not None:
            _remove_sqlite(self.sqlite_file)
        else:
            import psycopg

            base, name = self.database_url.rsplit("/", 1)
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
        seed.setup_django(self.env(redis=False))
        seed.migrate()

    @contextlib.contextmanager
    def servers(
        self,
        count: int,
        *,
        redis: bool,
        name: str,
        kind: str = "uvicorn",
        ws: str | None = None,
        args: tuple[str, ...] = (),
        **extra: str,
    ) -> Iterator[list[ServerProcess]]:
        env = self.env(redis=redis, **extra)
        procs: list[ServerProcess] = []
        try:
            for i in range(count):
                proc = ServerProcess(
                    env=env,
                    kind=kind,
                    ws=ws,
                    args=list(args),
                    log_path=self.logs / f"{name}-{i}.log",
                    lifespan=True,
                )
                procs.append(proc.start())
            yield procs
        finally:
            for proc in procs:
                proc.stop()

    @contextlib.contextmanager
    def app_or_baseline(
        self, scenario: str, baseline: str | None, name: str, count: int = 1, **servers: Any
    ) -> Iterator[list[ServerProcess]]:
        """The peer `baseline` (one process, see `baseline`) or, when None, `count` processes
        of the app (see `servers`); logs named after the scenario."""
        if baseline is not None:
            with self.baseline(baseline, f"{scenario}-{baseline}") as proc:
                yield [proc]
        else:
            with self.servers(count, name=f"{scenario}-{name}", **servers) as procs:
                yield procs

    @contextlib.contextmanager
    def baseline(self, which: str, name: str) -> Iterator[ServerProcess]:
        """The minimal Channels chat ("channels") or the bare websockets server ("websockets")."""
        if which == "channels":
            app, kind = "bench.baselines.channels_chat:application", "uvicorn"
        else:
            app, kind = "bench.baselines.ws_broadcast", "module"
        proc = ServerProcess(
            env=child_env(), app=app, kind=kind, cwd=REPO_DIR, log_path=self.logs / f"{name}.log"
        )
        try:
            yield proc.start()
        finally:
            proc.stop()

    @contextlib.contextmanager
    def upstream(self, *, first_delay: float, rate: float, tokens: int) -> Iterator[Upstream]:
        """The OpenAI-compatible upstream in a process of its own (testkit.upstream): replies
        of `tokens` chunks, each naming the tag of its request, at `rate` chunks a second
        after `first_delay`; every request logged."""
        name = f"upstream-{time.monotonic_ns()}"
        log = self.logs / f"{name}.jsonl"
        args = ["--first-delay", str(first_delay), "--rate", str(rate), "--tokens", str(tokens)]
        proc = ServerProcess(
            env=child_env(),
            app="testkit.upstream",
            kind="module",
            args=[*args, "--log", str(log)],
            cwd=REPO_DIR,
            log_path=self.logs / f"{name}.log",
        )
        try:
            proc.start(20)
            yield Upstream(proc, log)
        finally:
            proc.stop()


@dataclass
class Upstream:
    proc: ServerProcess
    log: Path
    api_key: str = API_KEY

    @property
    def base_url(self) -> str:
        return f"{self.proc.base_url}/v1"

    def records(self) -> dict[str, dict[str, Any]]:
        """What the upstream logged, by the tag of each request."""
        return {record["tag"]: record for record in read_log(self.log)}


def _remove_sqlite(path: Path) -> None:
    # With the file go SQLite's own and the in-memory layer's claim (`core.serving`).
    for suffix in ("", "-wal", "-shm", "-journal", ".serving"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3f}"


def as_dicts(results: list[Result]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
