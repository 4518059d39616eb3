"""search: message search (SPEC 9.4) over 1,000,000 messages in 1,000 rooms on PostgreSQL, for
a user who is a member of 20 of them, through the HTTP API of one server process.

The messages are inserted directly (COPY), spread over the rooms in the order people would
have written them, each 5 to 12 words drawn from a Korean and an English vocabulary of a dev
team's chat with Zipf-like frequencies, so the queries cover common and rare words. The
trigram index the migration made is dropped for the load and built again after it (from its
own definition), then the table is vacuumed and analysed.

Each query is asked REPEATS times (after one unmeasured call): Korean and English, a common
word, a two-character word (no trigram), a middling one, a rare one, a part of a word, and one
that matches nothing. Targets: p95 <= 100 ms over the Korean queries and over the English ones.
The plans of the server's own statements (EXPLAIN ANALYZE) go to results/<run>/search-plans.txt.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from bench import client, seed
from bench.context import RESULTS_DIR, Bench

ROOMS = 1000
MESSAGES = 1_000_000
MEMBER_ROOMS = 20
REPEATS = 20
P95_TARGET_MS = 100.0
# Words of no vocabulary, in one message of RARE_EVERY: a member's rooms hold a handful.
RARE_EVERY = 25_000
RARE_KOREAN = "볶음"
RARE_ENGLISH = "canary"

KOREAN = [
    "배포",
    "서버",
    "데이터베이스",
    "마이그레이션",
    "테스트",
    "회의",
    "일정",
    "코드리뷰",
    "브랜치",
    "머지",
    "장애",
    "로그",
    "모니터링",
    "캐시",
    "인덱스",
    "쿼리",
    "성능",
    "메모리",
    "요청",
    "응답",
    "사용자",
    "권한",
    "로그인",
    "세션",
    "토큰",
    "비용",
    "예산",
    "문서",
    "위키",
    "배치",
    "스케줄",
    "알림",
    "채널",
    "메시지",
    "검색",
    "결과",
    "확인",
    "수정",
    "삭제",
    "추가",
    "변경",
    "완료",
    "진행",
    "오늘",
    "내일",
    "금요일",
    "월요일",
    "오전",
    "오후",
    "점심",
    "커피",
    "회의록",
    "프론트엔드",
    "백엔드",
    "인프라",
    "쿠버네티스",
    "도커",
    "컨테이너",
    "네트워크",
    "방화벽",
    "인증서",
    "도메인",
    "트래픽",
    "부하",
    "지연",
    "타임아웃",
    "재시도",
    "워커",
    "프로세스",
    "스레드",
    "동기화",
    "비동기",
    "웹소켓",
    "재연결",
    "브라우저",
    "모바일",
    "디자인",
    "기획",
    "요구사항",
    "이슈",
    "버그",
    "핫픽스",
    "릴리스",
    "버전",
    "롤백",
    "백업",
    "복구",
    "스냅샷",
    "레플리카",
    "파티션",
    "트랜잭션",
    "잠금",
    "교착상태",
    "격리수준",
    "커밋",
    "리베이스",
    "충돌",
    "해결",
    "리팩터링",
    "타입",
    "린트",
    "빌드",
    "파이프라인",
    "승인",
    "리뷰어",
    "담당자",
    "우선순위",
    "마감",
    "스프린트",
    "회고",
    "데모",
    "고객",
    "피드백",
    "지표",
    "대시보드",
    "경보",
    "온콜",
    "장애보고서",
]
ENGLISH = [
    "deploy",
    "server",
    "database",
    "migration",
    "test",
    "meeting",
    "schedule",
    "review",
    "branch",
    "merge",
    "outage",
    "logs",
    "monitoring",
    "cache",
    "index",
    "query",
    "performance",
    "memory",
    "request",
    "response",
    "user",
    "permission",
    "login",
    "session",
    "token",
    "cost",
    "budget",
    "docs",
    "wiki",
    "batch",
    "cron",
    "alert",
    "channel",
    "message",
    "search",
    "result",
    "check",
    "fix",
    "delete",
    "add",
    "change",
    "done",
    "progress",
    "today",
    "tomorrow",
    "friday",
    "monday",
    "morning",
    "afternoon",
    "lunch",
    "coffee",
    "notes",
    "frontend",
    "backend",
    "infra",
    "kubernetes",
    "docker",
    "container",
    "network",
    "firewall",
    "certificate",
    "domain",
    "traffic",
    "load",
    "latency",
    "timeout",
    "retry",
    "worker",
    "process",
    "thread",
    "sync",
    "async",
    "websocket",
    "reconnect",
    "browser",
    "mobile",
    "design",
    "planning",
    "requirements",
    "issue",
    "bug",
    "hotfix",
    "release",
    "version",
    "rollback",
    "backup",
    "restore",
    "snapshot",
    "replica",
    "partition",
    "transaction",
    "lock",
    "deadlock",
    "isolation",
    "commit",
    "rebase",
    "conflict",
    "resolve",
    "refactor",
    "types",
    "lint",
    "build",
    "pipeline",
    "approval",
    "reviewer",
    "owner",
    "priority",
    "deadline",
    "sprint",
    "retro",
    "demo",
    "customer",
    "feedback",
    "metrics",
    "dashboard",
    "pager",
    "oncall",
    "postmortem",
]


@dataclass(frozen=True)
class Query:
    name: str
    language: str
    text: str


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Both vocabularies in one random order of frequency, weight 1/rank^0.9."""
    words = [*KOREAN, *ENGLISH]
    rng.shuffle(words)
    return words, [1 / (rank + 1) ** 0.9 for rank in range(len(words))]


def queries(words: list[str]) -> list[Query]:
    """Queries picked by the words' frequency ranks, so each run asks the same kinds."""

    def ranked(language: str, fits: object = None) -> list[str]:
        pool = KOREAN if language == "ko" else ENGLISH
        return [w for w in words if w in pool and (fits is None or fits(w))]  # type: ignore[operator]

    ko, en = ranked("ko"), ranked("en")
    ko_long = ranked("ko", lambda w: len(w) >= 3)
    ko_two = ranked("ko", lambda w: len(w) == 2)
    en_long = ranked("en", lambda w: len(w) >= 6)
    ko_part = next(w for w in ko_long if len(w) >= 5)
    en_part = next(w for w in en_long if len(w) >= 8)
    return [
        Query("Korean, the most common word", "ko", ko[0]),
        Query("Korean, a common two-character word", "ko", ko_two[1]),
        Query("Korean, a middling word", "ko", ko_long[len(ko_long) // 2]),
        Query("Korean, the rarest word", "ko", ko_long[-1]),
        Query("Korean, a rare two-character word", "ko", RARE_KOREAN),
        Query("Korean, part of a word", "ko", ko_part[1:4]),
        Query("Korean, nothing matches", "ko", "없는검색어"),
        Query("English, the most common word", "en", en[0]),
        Query("English, a middling word", "en", en_long[len(en_long) // 2]),
        Query("English, the rarest word", "en", en_long[-1]),
        Query("English, a rare word", "en", RARE_ENGLISH),
        Query("English, part of a word (any case)", "en", en_part[1:6].upper()),
        Query("English, nothing matches", "en", "zqxjwv"),
    ]


def _messages_tsv(
    rooms: list[tuple[str, int]], words: list[str], weights: list[float], count: int
) -> io.StringIO:
    """COPY text of `count` room-chat messages over the rooms, oldest first."""
    rng = random.Random(915)
    out = io.StringIO()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    picks = rng.choices(range(len(rooms)), k=count)
    lengths = rng.choices(range(5, 13), k=count)
    drawn = iter(rng.choices(words, weights=weights, k=sum(lengths)))
    for n in range(count):
        room_id, sender_id = rooms[picks[n]]
        text = " ".join(next(drawn) for _ in range(lengths[n]))
        if n % RARE_EVERY == RARE_EVERY // 2:
            text += f" {RARE_KOREAN} {RARE_ENGLISH}"
        at = (start + timedelta(seconds=n * 3)).isoformat()
        out.write(f"{room_id}\t{sender_id}\t{text}\t{at}\tf\n")
    out.seek(0)
    return out


def load(bench: Bench, count: int) -> tuple[str, list[Query], dict[str, float]]:
    """Rooms, the searcher (a member of MEMBER_ROOMS of them), `count` messages and the index;
    returns the searcher's session cookie, the queries and the load's timings."""
    import psycopg
    from django.db import connection

    from chat.models import ChatRoom

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rooms = seed.make_rooms(bench.prefix(), ROOMS, 1)
    searcher = seed.make_rooms(bench.prefix(), 1, 1)[0]
    ChatRoom.objects.filter(pk=searcher.room_id).delete()
    mine = random.Random(20).sample(rooms, MEMBER_ROOMS)
    through = ChatRoom.participants.through
    through.objects.bulk_create(
        [through(chatroom_id=r.room_id, user_id=searcher.members[0].user_id) for r in mine]
    )
    words, weights = vocabulary(random.Random(15))
    data = _messages_tsv([(r.room_id, r.members[0].user_id) for r in rooms], words, weights, count)
    timings["generate"] = time.perf_counter() - t0
    connection.close()
    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'chat_msg_content_trgm'"
        ).fetchone()
        if row is None:
            raise RuntimeError("The search index of migration chat 0004 is missing.")
        conn.execute("DROP INDEX chat_msg_content_trgm")
        t1 = time.perf_counter()
        with conn.cursor().copy(
            "COPY chat_message (room_id, sender_id, content, created_at, reply_to_edited) "
            "FROM STDIN"
        ) as copy:
            while chunk := data.read(1 << 20):
                copy.write(chunk)
        timings["copy"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(row[0])
        timings["index build"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        conn.execute("VACUUM ANALYZE chat_message")
        timings["vacuum analyze"] = time.perf_counter() - t3
    return searcher.members[0].cookie, queries(words), timings


def plans(bench: Bench, searcher_cookie: str, chosen: list[Query]) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement the search runs, for each query."""
    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from chat.search import message_search

    user_id = Session.objects.get(session_key=searcher_cookie).get_decoded()["_auth_user_id"]
    user = User.objects.get(pk=user_id)
    out = []
    for query in chosen:
        with CaptureQueriesContext(connection) as ctx:
            message_search(user=user, q=query.text)
        sql = ctx.captured_queries[-1]["sql"]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            plan = "\n".join(r[0] for r in cursor.fetchall())
        out.append(f"-- {query.name}: q={query.text!r}\n{sql}\n\n{plan}\n")
    return "\n".join(out)


def _ask(conn: http.client.HTTPConnection, cookie: str, q: str) -> tuple[float, int]:
    """One search request: its latency (ms) and how many results the first page held."""
    from django.conf import settings

    path = "/api/chat/search/?" + urlencode({"q": q})
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - t0) * 1000
    if response.status != 200:
        raise RuntimeError(f"search {q!r} answered {response.status}: {body[:200]!r}")
    return elapsed, body.count(b'"message_id"')


def _measure(port: int, cookie: str, chosen: list[Query], repeats: int) -> dict[str, list[float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times: dict[str, list[float]] = {}
    try:
        for query in chosen:
            _ask(conn, cookie, query.text)  # warm: the first call pays for cold pages
        for _ in range(repeats):
            for query in chosen:
                times.setdefault(query.name, []).append(_ask(conn, cookie, query.text)[0])
    finally:
        conn.close()
    return times


def _matches(chosen: list[Query], cookie: str) -> dict[str, int]:
    """How many of the searcher's messages each query matches (for the table)."""
    from django.contrib.sessions.models import Session
    from django.db.models import F, Value

    from accounts.models import User
    from chat.access import member_rooms
    from chat.models import Message
    from chat.search import ContainsSubstring, like_pattern

    user_id = Session.objects.get(session_key=cookie).get_decoded()["_auth_user_id"]
    rooms = member_rooms(User.objects.get(pk=user_id)).values("pk")
    return {
        q.name: Message.objects.filter(room__in=rooms)
        .filter(ContainsSubstring(F("content"), Value(like_pattern(q.text))))
        .count()
        for q in chosen
    }


async def run(bench: Bench) -> None:
    count = MESSAGES // 5 if bench.quick else MESSAGES
    repeats = REPEATS // 2 if bench.quick else REPEATS
    print(f"search: loading {count:,} messages in {ROOMS:,} rooms", flush=True)
    cookie, chosen, timings = await asyncio.to_thread(load, bench, count)
    config = f"{count:,} messages, {ROOMS:,} rooms, a member of {MEMBER_ROOMS}"
    for step, seconds in timings.items():
        bench.add("search", config, f"load: {step}", seconds, "s")
    matches = await asyncio.to_thread(_matches, chosen, cookie)
    out = RESULTS_DIR / bench.run_id
    out.mkdir(parents=True, exist_ok=True)
    text = await asyncio.to_thread(plans, bench, cookie, chosen)
    (out / "search-plans.txt").write_text(text)
    print(f"  plans in {out / 'search-plans.txt'}", flush=True)
    with bench.servers(1, redis=True, name="search") as procs:
        times = await asyncio.to_thread(_measure, procs[0].port, cookie, chosen, repeats)
    for query in chosen:
        values = times[query.name]
        bench.add(
            "search",
            config,
            f"{query.name} ({query.text!r}, {matches[query.name]:,} of the member's) p50",
            client.percentile(values, 50),
            "ms",
        )
        bench.add("search", config, f"{query.name} p95", client.percentile(values, 95), "ms")
    for language, label in (("ko", "Korean"), ("en", "English")):
        values = [v for q in chosen if q.language == language for v in times[q.name]]
        bench.add(
            "search",
            config,
            f"{label} queries p95",
            client.percentile(values, 95),
            "ms",
            at_most=P95_TARGET_MS,
        )
