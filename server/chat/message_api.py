"""/api/chat/messages/<id>/ and /api/chat/search/: a message after it is sent (SPEC 9.4)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from accounts.models import User
from chat.edits import Changed, message_delete, message_edit
from chat.events import MessageOut, message_out
from chat.search import PAGE_MAX, QUERY_MAX_CHARS, message_search
from core.api import errors, signed_in

router = Router(tags=["chat"], auth=signed_in)


class MessageEditIn(Schema):
    # MAX_MESSAGE_CHARS is the rule (chat.services.message_clean); this bound only keeps the
    # schema's promise within the 64 KiB body limit, escaped characters included.
    message: str = Field(..., max_length=8000)


class MessageEnvelope(Schema):
    result: Literal["success"]
    message: MessageOut


class SearchQuery(Schema):
    q: str = Field(..., max_length=QUERY_MAX_CHARS * 4)
    room_uuid: UUID | None = None
    before: int | None = Field(None, ge=1, le=2**62)
    limit: int | None = Field(None, ge=1, le=PAGE_MAX)


class MatchedPart(Schema):
    text: str
    match: bool


class SearchHitOut(MessageOut):
    room_id: UUID
    room_name: str
    # The AI session the message belongs to; null for room chat.
    session_id: UUID | None
    # The message's text cut into runs; `match` marks those that matched the query. Plain
    # text: a client shows each run as text (never as HTML) and marks the matched ones.
    parts: list[MatchedPart]


class SearchEnvelope(Schema):
    result: Literal["success"]
    results: list[SearchHitOut]
    has_more: bool


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _changed_body(request: HttpRequest, changed: Changed) -> dict[str, object]:
    shown = message_out(
        changed.message,
        viewer_id=_user(request).pk,
        mentions=changed.mentions,
        owner_id=changed.owner_id,
    )
    return {"result": "success", "message": shown}


@router.patch(
    "/messages/{int:message_id}/",
    response={200: MessageEnvelope, **errors(401, 403, 404, 415, 429)},
    summary="Edit a message (its sender; not the assistant's replies)",
    description=(
        "Replaces the text (1 to MAX_MESSAGE_CHARS characters after trimming). Everyone on the "
        "room chat or AI session gets `message_edited` {message_id, message, edited_at, "
        "change_seq, replies, mentions}; the assistant's replies to the message (`replies`) "
        "now carry `reply_to_edited: true`. Counts against CHAT_USER_RATE."
    ),
)
def edit_message(
    request: HttpRequest, message_id: int, payload: MessageEditIn
) -> dict[str, object]:
    return _changed_body(
        request, message_edit(message_id=message_id, actor=_user(request), text=payload.message)
    )


@router.delete(
    "/messages/{int:message_id}/",
    response={200: MessageEnvelope, **errors(401, 403, 404, 429)},
    summary="Delete a message (its sender or the room's owner)",
    description=(
        "Erases the text and keeps the message's place as a tombstone "
        '`{"message_id", "deleted": true, "message": ""}`. Everyone on the room chat or AI '
        "session gets `message_deleted` {message_id, change_seq}. Deleting a deleted message "
        "changes nothing. Counts against CHAT_USER_RATE."
    ),
)
def delete_message(request: HttpRequest, message_id: int) -> dict[str, object]:
    return _changed_body(request, message_delete(message_id=message_id, actor=_user(request)))


@router.get(
    "/search/",
    response={200: SearchEnvelope, **errors(401, 404)},
    summary="Search the messages of my rooms and their AI sessions, newest first",
    description=(
        "`q`: 2 to 200 characters, matched as a substring ignoring case (Korean and English "
        "alike). `room_uuid` narrows to one room (404 if it is not yours); `before` (a "
        "message_id) gives the next page while `has_more`. Each result carries its room, its "
        "AI session (null for room chat) and `parts`: its text in runs, the matched ones "
        "marked `match: true`."
    ),
)
def search(request: HttpRequest, query: Query[SearchQuery]) -> dict[str, object]:
    user = _user(request)
    page = message_search(
        user=user, q=query.q, room_id=query.room_uuid, before=query.before, limit=query.limit
    )
    results = []
    for hit in page.hits:
        m = hit.message
        results.append(
            {
                **message_out(m, viewer_id=user.pk, owner_id=m.room.owner_id).model_dump(),
                "room_id": m.room_id,
                "room_name": m.room.name,
                "session_id": m.ai_session_id,
                "parts": [{"text": text, "match": match} for text, match in hit.parts],
            }
        )
    return {"result": "success", "results": results, "has_more": page.has_more}
