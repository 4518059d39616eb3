"""The one statement that stores a person's message (chat.services.message_insert)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict

from accounts.models import User
from chat.conversations import Conversation
from chat.models import Message
from chat.order import Stored
from chat.services import message_insert, room_create
from llm.models import AiChatSession

pytestmark = pytest.mark.django_db(transaction=True)


def _row(message_id: int) -> dict[str, object]:
    """Every column of a stored message as the database gives it back, but its id."""
    stored = Message.objects.get(pk=message_id)
    row = {f.attname: getattr(stored, f.attname) for f in Message._meta.concrete_fields}
    del row["id"]
    return row


@pytest.mark.parametrize("kind", ["room", "session"])
def test_the_fast_insert_writes_the_row_the_orm_writes(alice, kind):
    room = room_create(owner=alice, name="devs")
    session = (
        AiChatSession.objects.create(room=room, created_by=alice, model="m")
        if kind == "session"
        else None
    )
    conversation = Conversation(room_id=room.pk, session_id=session.pk if session else None)
    stored = message_insert(
        conversation=conversation, sender=alice, content="héllo 👋", client_id="c-1"
    )
    assert stored is not None
    fast = stored.message
    orm = Message.objects.create(
        room=room,
        ai_session=session,
        sender=alice,
        content="héllo 👋",
        client_id="c-2",
        created_at=fast.created_at,
    )
    fast_row, orm_row = _row(fast.pk), _row(orm.pk)
    assert fast_row.pop("client_id") == "c-1"
    assert orm_row.pop("client_id") == "c-2"
    assert fast_row == orm_row
    # The instance handed back is the row as stored.
    assert {k: v for k, v in model_to_dict(fast).items() if k != "id"} == {
        k: v for k, v in model_to_dict(Message.objects.get(pk=fast.pk)).items() if k != "id"
    }


def test_a_non_member_is_not_stored(alice, bob):
    room = room_create(owner=alice, name="devs")
    conversation = Conversation(room_id=room.pk)

    def say(text: str) -> Stored | None:
        return message_insert(conversation=conversation, sender=bob, content=text, client_id=None)

    assert say("x") is None
    room.participants.add(bob)
    assert say("x") is not None
    room.participants.remove(bob)
    assert say("y") is None
    assert list(Message.objects.values_list("content", flat=True)) == ["x"]


def test_a_reused_client_id_keeps_the_callers_transaction_usable(alice):
    room = room_create(owner=alice, name="devs")
    conversation = Conversation(room_id=room.pk)
    message_insert(conversation=conversation, sender=alice, content="a", client_id="same")
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            message_insert(conversation=conversation, sender=alice, content="b", client_id="same")
        # Still usable: the failed insert ran under a savepoint.
        assert Message.objects.filter(room=room).count() == 1


@pytest.mark.parametrize("kind", ["room", "session"])
def test_each_message_names_the_one_before_it_in_its_conversation(alice, bob, kind):
    room = room_create(owner=alice, name="devs")
    room.participants.add(bob)
    other = Conversation(room_id=room_create(owner=alice, name="other").pk)
    conversation = Conversation(room_id=room.pk)
    if kind == "session":
        session = AiChatSession.objects.create(room=room, created_by=alice, model="m")
        conversation = Conversation(room_id=room.pk, session_id=session.pk)
    previous = 0
    for n, sender in enumerate([alice, bob, bob, alice]):
        stored = message_insert(
            conversation=conversation, sender=sender, content=f"m{n}", client_id=None
        )
        assert stored is not None
        assert (stored.previous_id, stored.owner_id) == (previous, alice.pk)
        previous = stored.message.pk
        # Another conversation's messages, a refused one and a failed one do not come between.
        message_insert(conversation=other, sender=alice, content="elsewhere", client_id=None)
        assert (
            message_insert(
                conversation=conversation, sender=User(pk=2**40), content="x", client_id=None
            )
            is None
        )
        with transaction.atomic():
            message_insert(conversation=conversation, sender=alice, content="y", client_id="dup")
            with pytest.raises(IntegrityError):
                message_insert(
                    conversation=conversation, sender=alice, content="y", client_id="dup"
                )
            transaction.set_rollback(True)
