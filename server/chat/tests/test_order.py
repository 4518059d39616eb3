"""The order of a conversation (chat.order): ids are allotted and committed in one order per
conversation, so `after=<id>` misses nothing that commits late (SPEC 9.4)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections, transaction

from accounts.services import assistant_user
from chat.conversations import Conversation
from chat.models import ChatRoom
from chat.order import Stored, change_next, message_append
from chat.services import message_insert, room_create
from llm.models import AiChatSession

pytestmark = pytest.mark.django_db(transaction=True)


def _wait_for_a_lock_wait(marker: str, within: float = 10.0) -> None:
    """Until a session of the test database waits on a lock in a statement containing
    `marker` (seen by PostgreSQL itself, not guessed from time)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE %s"
    )
    deadline = time.monotonic() + within
    watcher = connections.create_connection("default")  # outside the test's transaction
    try:
        while time.monotonic() < deadline:
            with watcher.cursor() as cursor:
                cursor.execute(query, [f"%{marker}%"])
                row = cursor.fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    finally:
        watcher.close()
    raise AssertionError("the second writer never waited for the first one's lock")


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["room", "session"])
@pytest.mark.parametrize("first", ["person", "assistant"])
def test_a_message_waits_until_the_one_before_it_commits(alice, kind, first):
    room = room_create(owner=alice, name="devs")
    conversation = Conversation(room_id=room.pk)
    if kind == "session":
        session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
        conversation = Conversation(room_id=room.pk, session_id=session.pk)
    assistant = assistant_user()
    later: list[Stored | None] = []

    def second_writer() -> None:
        try:
            later.append(
                message_insert(
                    conversation=conversation, sender=alice, content="second", client_id=None
                )
            )
        finally:
            connections.close_all()

    with transaction.atomic():
        if first == "person":
            earlier = message_insert(
                conversation=conversation, sender=alice, content="first", client_id=None
            )
        else:
            earlier = message_append(conversation=conversation, sender=assistant, content="first")
        assert earlier is not None
        writer = threading.Thread(target=second_writer)
        writer.start()
        # The second message may not even draw its id while the first is uncommitted.
        _wait_for_a_lock_wait("WITH tail AS")
    writer.join(10)
    assert not writer.is_alive()
    stored = later[0]
    assert stored is not None
    assert stored.message.pk > earlier.message.pk
    assert stored.previous_id == earlier.message.pk


def changes_of(room):
    return ChatRoom.objects.values_list("changes", flat=True).get(pk=room.pk)


def test_changes_are_numbered_one_after_the_other_per_conversation(alice):
    room = room_create(owner=alice, name="devs")
    conversation = Conversation(room_id=room.pk)
    session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
    other = Conversation(room_id=room.pk, session_id=session.pk)
    assert changes_of(room) == 0
    with transaction.atomic():
        assert [change_next(conversation=conversation) for _ in range(3)] == [1, 2, 3]
    with transaction.atomic():
        assert change_next(conversation=conversation) == 4
        transaction.set_rollback(True)
    assert change_next(conversation=other) == 1
    assert changes_of(room) == 3
