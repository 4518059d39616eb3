"""Operator actions: demo data for a first look at a fresh server."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from accounts.models import User
from chat.conversations import Conversation
from chat.models import ChatRoom
from chat.services import room_add_participant, room_create
from core.errors import ValidationFailed
from llm.services import message_post

DEMO_USERNAMES = ("demo_alice", "demo_bob", "demo_carol")
DEMO_ROOM_NAME = "Demo room"
# (sender index, client id, text): the client ids make a second run find instead of repeat them.
DEMO_MESSAGES = (
    (0, "demo-1", "Welcome to the demo room! Everyone here can open an AI session."),
    (1, "demo-2", "안녕하세요! Django Channels로 채팅 서버를 만들고 있어요."),
    (2, "demo-3", "Try the AI session: ask AI_Assistant how to profile an async view."),
    (0, "demo-4", "Messages, sessions and usage are all in the API docs at /api/docs."),
)


@dataclass(frozen=True)
class DemoData:
    users: list[User]
    room: ChatRoom
    messages_created: int


def _demo_user(*, username: str, password: str) -> User:
    user, _ = User.objects.get_or_create(username=username)
    user.set_password(password)
    user.is_active = True
    user.save(update_fields=["password", "is_active"])
    return user


def demo_data_ensure(*, password: str) -> DemoData:
    """Demo users (all with `password`), a room they share and a few messages in it.

    Running it again changes nothing but the users' password: users, room and messages are
    found, not duplicated.
    """
    try:
        password_validation.validate_password(password, user=User(username=DEMO_USERNAMES[0]))
    except DjangoValidationError as exc:
        raise ValidationFailed(f"password: {' '.join(exc.messages)}") from exc
    with transaction.atomic():
        users = [_demo_user(username=name, password=password) for name in DEMO_USERNAMES]
        owner = users[0]
        room = (
            ChatRoom.objects.filter(owner=owner, name=DEMO_ROOM_NAME).order_by("created_at").first()
        )
        if room is None:
            room = room_create(owner=owner, name=DEMO_ROOM_NAME)
        for user in users[1:]:
            room_add_participant(room_id=room.pk, actor=owner, username=user.username)
    created = 0
    for sender, client_id, text in DEMO_MESSAGES:
        posted = message_post(
            conversation=Conversation(room_id=room.pk),
            sender=users[sender],
            text=text,
            client_id=client_id,
            rate_limited=False,
        )
        created += int(posted.created)
    return DemoData(users=users, room=room, messages_created=created)
