"""Hostile WebSocket frames for property-based tests, and what SPEC 4.1 says each one earns.

A frame is `Frame(text=...)` or `Frame(data=...)` (a binary frame). `expected()` is SPEC 4.1
restated independently of the server: an `error` frame with a code, the sender's own
`chat_message` echo (and a saved message), or nothing (`stop_generation`, and `typing`, which
reaches the others and never the typist's own sockets: SPEC 9.3). The sweeps ask nothing of
the assistant, so a `regenerate` or `cancel_reply` naming a well-formed id finds no reply or
waiting question (`not_found`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from chat.models import Message

# One socket per example; examples share the test's database, so counts are taken per example.
SWEEP = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
MAX_FRAME_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 4000
CLIENT_ID_MAX = 64
# Codes an error frame may carry (SPEC 4.1, plus the README's validation_error and
# rate_limited); anything else, `internal_error` included, means a frame was not handled.
ERROR_CODES = frozenset(
    {
        "invalid_json",
        "unknown_type",
        "empty_message",
        "message_too_long",
        "validation_error",
        "rate_limited",
        "not_found",
    }
)

# Characters that break naive text handling: NUL, direction overrides and isolates, byte-order
# mark, zero-width and combining marks, emoji with joiners and flags, exotic spaces and line
# separators, markup, and a lone surrogate (a client can send one as the JSON escape \ud800).
ODD = [
    "\x00",
    "\u200e",
    "\u200f",
    "\u202e",
    "\u2066",
    "\u2069",
    "\ufeff",
    "\u200b",
    "\u0301",
    "\u0336",
    "\U0001f469\u200d\U0001f4bb",
    "\U0001f1f0\U0001f1f7",
    "\U0001f600",
    "\u3000",
    "\u00a0",
    "\u2028",
    "\x85",
    "\n",
    "\t",
    " ",
    "한",
    "\\",
    '"',
    "</script>",
    "\ud800",
    "\udfff",
]


class Frame:
    """One frame as a client sends it: text, or binary `data`. Not a dataclass, so that
    hypothesis prints a failing example with this short repr rather than whole megabytes."""

    __slots__ = ("data", "text")

    def __init__(self, text: str | None = None, data: bytes | None = None) -> None:
        self.text = text
        self.data = data

    def __repr__(self) -> str:
        body = self.text if self.text is not None else self.data
        assert body is not None
        more = f"... ({len(body)} long)" if len(body) > 160 else ""
        return f"Frame({body[:160]!r}{more})"


@dataclass(frozen=True)
class Error:
    code: str


@dataclass(frozen=True)
class Echo:
    content: str
    client_id: str | None


NOTHING = None


def _storable(text: str) -> bool:
    """No NUL (PostgreSQL refuses it) and no surrogate code point (no encoding has one)."""
    return not any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in text)


def expected(frame: Frame, frame_types: frozenset[str]) -> Error | Echo | None:
    """What the server owes the sender for one frame under the size limit."""
    if frame.text is None:
        return Error("invalid_json")
    try:
        value = json.loads(frame.text)
    except (ValueError, RecursionError):
        return Error("invalid_json")
    if not isinstance(value, dict):
        return Error("invalid_json")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in frame_types:
        return Error("unknown_type")
    if kind in ("stop_generation", "typing"):
        return NOTHING
    if kind in ("regenerate", "cancel_reply"):
        target = value.get("message_id")
        if type(target) is not int or not 0 < target < 2**62:
            return Error("validation_error")
        return Error("not_found")
    text = value.get("message")
    if not isinstance(text, str) or not text.strip():
        return Error("empty_message")
    content = text.strip()
    if len(content) > MAX_MESSAGE_CHARS:
        return Error("message_too_long")
    if not _storable(content):
        return Error("validation_error")
    client_id = value.get("client_id")
    if client_id is not None and (
        not isinstance(client_id, str)
        or not 0 < len(client_id) <= CLIENT_ID_MAX
        or not _storable(client_id)
    ):
        return Error("validation_error")
    return Echo(content, client_id)


def encode(value: Any, *, ascii_only: bool) -> str:
    """JSON text as a client sends it; a lone surrogate can only travel as an escape."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = json.dumps(value, ensure_ascii=True)
    return text


def _fits(frame: Frame) -> bool:
    size = len(frame.text.encode()) if frame.text is not None else len(frame.data or b"")
    return size <= MAX_FRAME_BYTES - 1024


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(ODD)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["type", "message"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
odd_text = st.lists(st.sampled_from(ODD) | st.text(max_size=6), max_size=24).map("".join)
# Right at MAX_MESSAGE_CHARS and past it, in code points of one to four UTF-8 bytes, with and
# without whitespace that trimming removes; and far past it.
boundary_text = st.builds(
    lambda unit, n, pad: pad + unit * n + pad,
    st.sampled_from(["a", "한", "\U0001f600", "e\u0301"]),
    st.sampled_from([1, MAX_MESSAGE_CHARS - 1, MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS + 1]),
    st.sampled_from(["", " ", "\n\t ", "\u3000"]),
)
huge_text = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["x", "한", "\U0001f600", " "]),
    st.integers(MAX_MESSAGE_CHARS + 1, 14_000),
)
message_text = odd_text | boundary_text | huge_text | st.text()
client_ids = (
    st.sampled_from(["c1", "c2", "c3"])
    | st.text(min_size=0, max_size=CLIENT_ID_MAX + 2)
    | st.sampled_from(["x" * CLIENT_ID_MAX, "x" * (CLIENT_ID_MAX + 1), "\x00", "\ud800"])
    | json_values
)


@st.composite
def chat_messages(draw: st.DrawFn) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "chat_message"}
    if draw(st.booleans()):
        frame["message"] = draw(message_text)
    else:
        frame["message"] = draw(message_text | json_values)
    if draw(st.booleans()):
        frame["client_id"] = draw(client_ids)
    if draw(st.booleans()):
        frame.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)))
        frame["type"] = draw(st.sampled_from(["chat_message", "chat_message", "Chat_Message"]))
    return frame


@st.composite
def objects(draw: st.DrawFn, frame_types: frozenset[str]) -> dict[str, Any]:
    """Objects with random keys, and a `type` that is sometimes right."""
    frame: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
    if draw(st.booleans()):
        frame["message_id"] = draw(st.integers(-1, 2**63) | st.sampled_from([True, 1.0, "1"]))
    choice = draw(st.integers(0, 3))
    if choice == 1:
        frame["type"] = draw(st.sampled_from(sorted(frame_types)))
    elif choice == 2:
        frame["type"] = draw(json_values | odd_text)
    return frame


def nesting(depth: int, *, inside_message: bool) -> str:
    nested = "[" * depth + "]" * depth
    return '{"type":"chat_message","message":' + nested + "}" if inside_message else nested


def _weighted(*choices: tuple[int, st.SearchStrategy[Frame]]) -> st.SearchStrategy[Frame]:
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


def frames(frame_types: frozenset[str]) -> st.SearchStrategy[Frame]:
    """Mostly valid-looking messages (where the odd cases hide), then objects with random
    keys, any JSON value, and text and binary frames that are not JSON at all."""
    # Depths well inside and well past what json.loads follows, none near its limit, where
    # the test's own parse and the server's could disagree by a few stack frames.
    depths = st.sampled_from([1, 2, 40, 200]) | st.integers(10_000, 30_000)

    def as_json(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Frame]:
        return st.builds(
            lambda v, ascii_only: Frame(text=encode(v, ascii_only=ascii_only)),
            values,
            st.booleans(),
        )

    specials = st.sampled_from(
        ["", " ", "null", "[]", "{}", "NaN", '{"type":null}', '{"type":', "\ufeff{}"]
    )
    bad_bytes = st.sampled_from(
        [b"\xff\xfe", b"\xc3\x28", b'{"type":"chat_message","message":"\xed\xa0\x80"}']
    )
    strategy = _weighted(
        (9, as_json(chat_messages())),
        (3, as_json(objects(frame_types))),
        (2, as_json(json_values)),
        (1, st.text(max_size=80).map(lambda t: Frame(text=t))),
        (1, specials.map(lambda t: Frame(text=t))),
        (
            1,
            st.builds(
                lambda d, inside: Frame(text=nesting(d, inside_message=inside)),
                depths,
                st.booleans(),
            ),
        ),
        (1, st.binary(max_size=64).map(lambda b: Frame(data=b))),
        (1, bad_bytes.map(lambda b: Frame(data=b))),
        (1, st.builds(lambda v: Frame(data=json.dumps(v).encode()), chat_messages())),
    )
    return strategy.filter(_fits)


# --- driving a socket ----------------------------------------------------------------------


def client_ids_of(user: Any) -> dict[str, str]:
    """The user's stored client ids and their messages' text (a retry echoes the stored one)."""
    return dict(
        Message.objects.filter(sender=user)
        .exclude(client_id=None)
        .values_list("client_id", "content")
    )


def plan(
    sent: list[Frame], frame_types: frozenset[str], known: dict[str, str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
    """The answers the frames earn and how many messages they save. Answers come two ways,
    each in order but in no order between them: straight to the socket (errors, and the
    stored message echoed for a retried client id) and through the channel layer (the echo
    of a new message; with Redis a round trip, so a later error may overtake it)."""
    direct: list[tuple[str, str]] = []
    layer: list[tuple[str, str]] = []
    saved = 0
    for frame in sent:
        outcome = expected(frame, frame_types)
        if isinstance(outcome, Error):
            direct.append(("error", outcome.code))
        elif isinstance(outcome, Echo):
            if outcome.client_id is not None and outcome.client_id in known:
                direct.append(("echo", known[outcome.client_id]))
                continue
            if outcome.client_id is not None:
                known[outcome.client_id] = outcome.content
            layer.append(("echo", outcome.content))
            saved += 1
    return direct, layer, saved


def interleaves(got: list[Any], direct: list[Any], layer: list[Any]) -> bool:
    """Whether `got` is `direct` and `layer` merged, each kept in its order."""
    reach = {(0, 0)}
    for item in got:
        reach = {(i + 1, j) for i, j in reach if i < len(direct) and direct[i] == item} | {
            (i, j + 1) for i, j in reach if j < len(layer) and layer[j] == item
        }
    return (len(direct), len(layer)) in reach


async def send(sock: Any, frame: Frame) -> None:
    # send_input, not send_to: the communicator refuses empty frames, which clients can send.
    if frame.text is not None:
        await sock.send_input({"type": "websocket.receive", "text": frame.text})
    else:
        await sock.send_input({"type": "websocket.receive", "bytes": frame.data})


def answer_of(frame: dict[str, Any]) -> tuple[str, str] | None:
    """A frame as an answer to the sender (an error, or its own message), else None."""
    if frame["type"] == "error":
        assert frame["code"] in ERROR_CODES, frame
        assert isinstance(frame["message"], str)
        assert frame["message"]
        return ("error", frame["code"])
    if frame["type"] == "chat_message" and frame["is_self"] and not frame["is_ai"]:
        return ("echo", frame["message"])
    return None


async def answers_until(sock: Any, ping: str) -> list[tuple[str, str]]:
    """The sender's answers up to the echo of `ping`, sent last; other frames are skipped.
    Every direct answer is in by then: it was queued before the ping was even read."""
    got: list[tuple[str, str]] = []
    while True:
        answer = answer_of(await sock.recv(5))
        if answer is not None:
            got.append(answer)
            if answer == ("echo", ping):
                return got
