"""Users, rooms, AI sessions and signed-in session cookies, made in bulk for a benchmark.

Runs in the bench runner's own process against the benchmark database. Nobody signs in: users
get no usable password (so no password hashing at all) and each gets a Django session row
made directly, which is what a sign-in would have left behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

_ready = False


def setup_django(env: dict[str, str]) -> None:
    """Configure Django in this process with the servers' settings (same database and key)."""
    global _ready
    if _ready:
        return
    # ENV_FILE empty: like the servers, this process reads no developer .env.
    for key in ("ENV_FILE", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "DEBUG"):
        os.environ[key] = env[key]
    os.environ["REDIS_URL"] = ""
    os.environ["SECURE_SSL_REDIRECT"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    _ready = True


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


@dataclass
class Member:
    user_id: int
    username: str
    cookie: str


@dataclass
class Room:
    room_id: str
    members: list[Member]
    session_id: str = ""


def make_rooms(prefix: str, rooms: int, per_room: int, *, ai_sessions: bool = False) -> list[Room]:
    """`rooms` rooms of `per_room` fresh members each (the first one owns it)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from accounts.models import User
    from accounts.usernames import username_key, username_skeleton
    from chat.models import ChatRoom
    from llm.models import AiChatSession

    unusable = make_password(None)
    backend = settings.AUTHENTICATION_BACKENDS[0]
    expires = timezone.now() + timedelta(days=1)
    store = SessionStore()
    with transaction.atomic():
        names = [f"{prefix}{r}x{m}" for r in range(rooms) for m in range(per_room)]
        # bulk_create skips User.save(), which derives the keys a sign-in looks accounts up by.
        users = User.objects.bulk_create(
            [
                User(
                    username=name,
                    username_key=username_key(name),
                    username_skeleton=username_skeleton(name),
                    password=unusable,
                )
                for name in names
            ],
            batch_size=2000,
        )
        sessions = []
        members = []
        for user in users:
            key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
            data = store.encode(
                {
                    SESSION_KEY: str(user.pk),
                    BACKEND_SESSION_KEY: backend,
                    HASH_SESSION_KEY: user.get_session_auth_hash(),
                }
            )
            sessions.append(Session(session_key=key, session_data=data, expire_date=expires))
            members.append(Member(user.pk, user.username, key))
        Session.objects.bulk_create(sessions, batch_size=2000)
        chat_rooms = ChatRoom.objects.bulk_create(
            [ChatRoom(name=f"{prefix}{r}", owner_id=users[r * per_room].pk) for r in range(rooms)],
            batch_size=2000,
        )
        through = ChatRoom.participants.through
        through.objects.bulk_create(
            [
                through(chatroom_id=chat_rooms[r].pk, user_id=users[r * per_room + m].pk)
                for r in range(rooms)
                for m in range(1, per_room)
            ],
            batch_size=5000,
        )
        result = [
            Room(str(chat_rooms[r].pk), members[r * per_room : (r + 1) * per_room])
            for r in range(rooms)
        ]
        if ai_sessions:
            made = AiChatSession.objects.bulk_create(
                [
                    AiChatSession(room=room, created_by_id=room.owner_id, model="gpt-4o-mini")
                    for room in chat_rooms
                ]
            )
            for room, session in zip(result, made, strict=True):
                room.session_id = str(session.pk)
    return result


def count_messages(room_ids: list[str]) -> int:
    from chat.models import Message

    return Message.objects.filter(room_id__in=room_ids).count()
