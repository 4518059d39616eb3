"""An account that changes closes the sockets it no longer signs in (accounts.signals,
core.ws.AppConsumer's re-check), and a deactivated account cannot post through a socket it
still holds."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import update_session_auth_hash
from django.test import Client, RequestFactory

from accounts.models import User
from chat.models import Message
from chat.services import room_create
from core.ws import still_signed_in

pytestmark = pytest.mark.django_db(transaction=True)


async def _open(ws, room, user):
    sock = await ws(f"/ws/chat/{room.pk}/", user)
    return sock


def _deactivate(user: User) -> None:
    user.is_active = False
    user.save()


def _new_password(user: User) -> None:
    user.set_password("Another-Horse-43")
    user.save()


@pytest.mark.parametrize("change", [_deactivate, _new_password], ids=["deactivated", "password"])
async def test_a_change_that_ends_the_sign_in_closes_every_socket(ws, room, bob, alice, change):
    room_sock = await _open(ws, room, bob)
    other_room = await sync_to_async(room_create)(owner=bob, name="bob's")
    other_sock = await ws(f"/ws/chat/{other_room.pk}/", bob)
    alice_sock = await _open(ws, room, alice)
    await sync_to_async(change)(bob)
    assert await room_sock.closed_with() == 4401
    assert await other_sock.closed_with() == 4401
    # Alice's socket is not touched: it still carries the room.
    await alice_sock.send_json_to({"type": "chat_message", "message": "still here"})
    assert (await alice_sock.recv_type("chat_message"))["message"] == "still here"


async def test_deleting_the_account_closes_its_sockets(ws, make_user, alice):
    dave = await sync_to_async(make_user)("dave")
    room = await sync_to_async(room_create)(owner=dave, name="dave's")
    sock = await ws(f"/ws/chat/{room.pk}/", dave)
    await sync_to_async(room.delete)()  # the room (and its owner) protect nothing else
    await sync_to_async(dave.delete)()
    assert await sock.closed_with() == 4401


async def test_saving_the_sign_in_time_does_not_disturb_the_sockets(ws, room, bob, alice):
    sock = await _open(ws, room, bob)
    await sync_to_async(Client().login)(username="bob", password="Correct-Horse-42")
    # The sign-in saved last_login; the socket carries on (the next frame is its own echo).
    await sock.send_json_to({"type": "chat_message", "message": "hi"})
    assert (await sock.recv_type("chat_message"))["message"] == "hi"


def test_the_session_that_changed_its_password_still_signs_in(bob):
    kept, other = Client(), Client()
    kept.force_login(bob)
    other.force_login(bob)
    request = RequestFactory().get("/")
    request.session = kept.session
    request.user = bob
    bob.set_password("Another-Horse-43")
    bob.save()
    # As Django's password-change views do: the session gets the new hash (and a new key, which
    # its browser's next request and socket use).
    update_session_auth_hash(request, bob)
    request.session.save()  # as SessionMiddleware does with the answer
    assert still_signed_in(session_key=request.session.session_key, user_id=bob.pk)
    assert not still_signed_in(session_key=other.session.session_key, user_id=bob.pk)
    assert not still_signed_in(session_key=None, user_id=bob.pk)
    assert not still_signed_in(session_key=request.session.session_key, user_id=bob.pk + 1)


async def test_a_deactivated_account_cannot_post_through_a_socket_it_still_holds(ws, room, bob):
    sock = await _open(ws, room, bob)
    # Deactivated without the model's signals (a bulk update): no re-check reaches the socket,
    # so only the write path itself can refuse.
    await sync_to_async(User.objects.filter(pk=bob.pk).update)(is_active=False)
    await sock.send_json_to({"type": "chat_message", "message": "after"})
    assert await sock.closed_with() == 4401
    assert not await sync_to_async(Message.objects.filter(content="after").exists)()
