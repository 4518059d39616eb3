"""Open sockets per user, across every server process: the cap (MAX_SOCKETS_PER_USER) and who
is online (SPEC 9.3: online while any socket of theirs is open on any process).

With REDIS_URL each user has a sorted set of socket ids scored by when the entry expires, and
one sorted set of online users scored by the latest expiry among their sockets. Each process's
hub re-announces its live sockets every PRESENCE_TTL_SECONDS / 4, so the sockets of a process
that died expire within PRESENCE_TTL_SECONDS, and every process sweeps the expired users out
of the online set, so that one of them announces that they went offline (the sweep removes a
user once: the process whose removal succeeded announces it). Every change of the online set
is a Lua script, so a user comes online or goes offline exactly once however many processes
open and close their sockets at the same time. Without Redis (one process) a set in memory does.

What a change of presence means for the product (whom to tell) is not this module's: the apps
register an announcer (`on_presence`), called on this process for each user who came online or
went offline here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.redis_client import async_redis, sync_redis

logger = logging.getLogger(__name__)

_memory: dict[int, set[str]] = {}

Announcer = Callable[[int, bool], Awaitable[None]]
_announcers: list[Announcer] = []
_announcing: dict[int, asyncio.Task[None]] = {}

# Every command of a script names its keys from these arguments; no other code writes them.
_REGISTER = """
local now, expires, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], expires, ARGV[3])
local count = redis.call('ZCARD', KEYS[1])
if cap > 0 and count > cap then
  redis.call('ZREM', KEYS[1], ARGV[3])
  return {0, 0}
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
local was = redis.call('ZSCORE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[2], 'GT', expires, ARGV[5])
if (not was) or tonumber(was) <= now then
  return {1, 1}
end
return {1, 0}
"""
_UNREGISTER = """
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then
  return redis.call('ZREM', KEYS[2], ARGV[3])
end
return 0
"""
# ARGV: now, expires, ttl, then (user id, socket id) pairs; KEYS[1] the online set, KEYS[2]
# the prefix of the per-user sets. Answers the users who were not online before.
_REFRESH = """
local now, expires = tonumber(ARGV[1]), tonumber(ARGV[2])
local back = {}
for i = 4, #ARGV, 2 do
  local user, key = ARGV[i], KEYS[2] .. ARGV[i]
  redis.call('ZADD', key, expires, ARGV[i + 1])
  redis.call('EXPIRE', key, ARGV[3])
  local was = redis.call('ZSCORE', KEYS[1], user)
  redis.call('ZADD', KEYS[1], 'GT', expires, user)
  if (not was) or tonumber(was) <= now then
    back[#back + 1] = user
  end
end
return back
"""
# Users whose every socket expired: out of the online set, answered once (to this caller).
_SWEEP = """
local now = tonumber(ARGV[1])
local gone = {}
for _, user in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)) do
  local key = KEYS[2] .. user
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] then
    redis.call('ZADD', KEYS[1], newest[2], user)
  else
    redis.call('ZREM', KEYS[1], user)
    gone[#gone + 1] = user
  end
end
return gone
"""
_scripts: dict[str, Any] = {}
# How long a user whose last socket closed may take to open another before they are announced
# offline.
OFFLINE_GRACE_SECONDS = 3.0


def ttl() -> int:
    """How long a socket counts after its process last vouched for it."""
    return int(settings.PRESENCE_TTL_SECONDS)


def refresh_interval() -> float:
    """How often each process vouches for its live sockets and sweeps out expired users:
    a user of a process that died is announced offline within ttl() + this."""
    return ttl() / 4


def _key(user_id: int | str) -> str:
    return f"{settings.CHANNEL_PREFIX}:sockets:{user_id}"


def _online_key() -> str:
    return f"{settings.CHANNEL_PREFIX}:online"


async def _run(source: str, keys: list[str], args: list[Any]) -> Any:
    client = async_redis()
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = client.register_script(source)
    # The script object is shared; each call runs on the client of the current event loop.
    return await script(keys=keys, args=args, client=client)


@dataclass(frozen=True)
class Registered:
    allowed: bool  # False: the user is at the cap, nothing was counted
    came_online: bool  # the user had no socket open anywhere before this one


async def register(user_id: int, socket_id: str) -> Registered:
    """Count a new socket, unless the user is at the cap."""
    cap = settings.MAX_SOCKETS_PER_USER
    if not settings.REDIS_URL:
        sockets = _memory.setdefault(user_id, set())
        if cap > 0 and len(sockets) >= cap:
            return Registered(allowed=False, came_online=False)
        sockets.add(socket_id)
        return Registered(allowed=True, came_online=len(sockets) == 1)
    now = time.time()
    allowed, came = await _run(
        _REGISTER,
        [_key(user_id), _online_key()],
        [now, now + ttl(), socket_id, cap, user_id, ttl()],
    )
    return Registered(allowed=bool(allowed), came_online=bool(came))


async def unregister(user_id: int, socket_id: str) -> bool:
    """Stop counting a socket; True if it was the user's last one (they went offline)."""
    if not settings.REDIS_URL:
        sockets = _memory.get(user_id)
        if sockets is None or socket_id not in sockets:
            return False
        sockets.discard(socket_id)
        if sockets:
            return False
        del _memory[user_id]
        return True
    gone = await _run(
        _UNREGISTER, [_key(user_id), _online_key()], [time.time(), socket_id, user_id]
    )
    return bool(gone)


async def refresh(entries: Iterable[tuple[int, str]]) -> list[int]:
    """Extend the entries of this process's live sockets; the users among them who were
    counted offline meanwhile (their entries had expired), now online again."""
    if not settings.REDIS_URL:
        return []
    pairs = list(entries)
    back: list[int] = []
    # In slices: a script holds Redis for as long as it runs.
    for start in range(0, len(pairs), 500):
        now = time.time()
        args: list[Any] = [now, now + ttl(), ttl()]
        for user_id, socket_id in pairs[start : start + 500]:
            args += [user_id, socket_id]
        back += [int(user) for user in await _run(_REFRESH, [_online_key(), _key("")], args)]
    return back


async def sweep() -> list[int]:
    """Users whose every socket expired (their process died), taken out of the online set;
    each is answered to exactly one caller on one process."""
    if not settings.REDIS_URL:
        return []
    gone = await _run(_SWEEP, [_online_key(), _key("")], [time.time()])
    return [int(user) for user in gone]


async def _online_now(user_id: int) -> bool:
    if not settings.REDIS_URL:
        return bool(_memory.get(user_id))
    score = await async_redis().zscore(_online_key(), user_id)
    return score is not None and score > time.time()


def online_among(user_ids: Iterable[int]) -> set[int]:
    """Which of these users have a socket open now, on any process (synchronous: for views
    and services in database threads)."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return set()
    if not settings.REDIS_URL:
        return {user_id for user_id in ids if _memory.get(user_id)}
    scores = sync_redis().zmscore(_online_key(), ids)
    now = time.time()
    return {user_id for user_id, score in zip(ids, scores, strict=True) if score and score > now}


# --- announcing -------------------------------------------------------------------------


def on_presence(announcer: Announcer) -> None:
    """Call `announcer(user_id, online)` for each change of presence seen by this process."""
    if announcer not in _announcers:
        _announcers.append(announcer)


def announce_soon(user_id: int, online: bool) -> None:
    """Announce a change of presence in the background, after the previous change of the
    same user on this process (so that "online" never overtakes the "offline" before it)."""
    if not _announcers:
        return
    previous = _announcing.get(user_id)
    task = asyncio.create_task(_announce(user_id, online, previous))
    _announcing[user_id] = task

    def forget(done: asyncio.Task[None]) -> None:
        if _announcing.get(user_id) is done:
            del _announcing[user_id]

    task.add_done_callback(forget)


async def _announce(user_id: int, online: bool, previous: asyncio.Task[None] | None) -> None:
    if previous is not None:
        await asyncio.wait([previous])
    if not online:
        # Moving from one page to another closes the user's sockets and opens new ones: only
        # a user still gone after a moment has gone offline (the "online" in between changed
        # nothing for those who were told).
        await asyncio.sleep(OFFLINE_GRACE_SECONDS)
        if await _online_now(user_id):
            return
    if _announcing.get(user_id) is not asyncio.current_task():
        return  # a later change of the same user's presence, queued meanwhile, says it
    for announcer in _announcers:
        try:
            await announcer(user_id, online)
        except Exception:
            logger.warning("Could not announce that user %s is %s", user_id, online, exc_info=True)


async def drain_announcements() -> None:
    """Wait for the announcements under way (tests, shutdown)."""
    while _announcing:
        await asyncio.wait(list(_announcing.values()))


# --- rosters: who has a group's sockets open (an AI session's viewers) --------------------

RosterAnnouncer = Callable[[str, list[str]], Awaitable[None]]
_rosters: dict[str, dict[str, str]] = {}
_roster_announcers: list[RosterAnnouncer] = []


def _roster_key(roster: str) -> str:
    return f"{settings.CHANNEL_PREFIX}:roster:{roster}"


def roster_entry(socket_id: str, username: str) -> str:
    return f"{socket_id}:{username}"


def _names(entries: Iterable[bytes | str]) -> list[str]:
    names = set()
    for entry in entries:
        text = entry.decode() if isinstance(entry, bytes) else entry
        names.add(text.split(":", 1)[1])
    return sorted(names)


async def roster_join(roster: str, socket_id: str, username: str) -> list[str]:
    """Add a socket to the roster of `roster` (a group); the usernames on it now."""
    entry = roster_entry(socket_id, username)
    if not settings.REDIS_URL:
        members = _rosters.setdefault(roster, {})
        members[socket_id] = entry
        return _names(members.values())
    now = time.time()
    key = _roster_key(roster)
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.zadd(key, {entry: now + ttl()})
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.expire(key, ttl())
        pipe.zrange(key, 0, -1)
        *_, entries = await pipe.execute()
    return _names(entries)


async def roster_leave(roster: str, socket_id: str, username: str) -> list[str]:
    """Take a socket off a roster; the usernames left on it."""
    if not settings.REDIS_URL:
        members = _rosters.get(roster, {})
        members.pop(socket_id, None)
        if not members:
            _rosters.pop(roster, None)
        return _names(members.values())
    key = _roster_key(roster)
    async with async_redis().pipeline(transaction=True) as pipe:
        pipe.zrem(key, roster_entry(socket_id, username))
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zrange(key, 0, -1)
        *_, entries = await pipe.execute()
    return _names(entries)


async def roster_refresh(entries: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Extend this process's roster entries (roster, entry) and drop the expired ones of those
    rosters (sockets of a process that died); the rosters that lost someone, with who is left."""
    if not settings.REDIS_URL:
        return {}
    by_roster: dict[str, list[str]] = {}
    for roster, entry in entries:
        by_roster.setdefault(roster, []).append(entry)
    changed: dict[str, list[str]] = {}
    now = time.time()
    for roster, mine in by_roster.items():
        key = _roster_key(roster)
        async with async_redis().pipeline(transaction=True) as pipe:
            pipe.zadd(key, dict.fromkeys(mine, now + ttl()))
            pipe.expire(key, ttl())
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zrange(key, 0, -1)
            _, _, dropped, left = await pipe.execute()
        if dropped:
            changed[roster] = _names(left)
    return changed


def on_roster_change(announcer: RosterAnnouncer) -> None:
    """Call `announcer(roster, usernames)` when a roster loses the sockets of a dead process."""
    if announcer not in _roster_announcers:
        _roster_announcers.append(announcer)


async def announce_rosters(changed: dict[str, list[str]]) -> None:
    for roster, names in changed.items():
        for announcer in _roster_announcers:
            try:
                await announcer(roster, names)
            except Exception:
                logger.warning("Could not announce the roster of %s", roster, exc_info=True)


def reset() -> None:
    """Forget the in-memory registry (tests)."""
    _memory.clear()
    _rosters.clear()
