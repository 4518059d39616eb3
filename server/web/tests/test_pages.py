"""The web client's pages, server side: who sees what, the CSP header, the language."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from django.test import Client

from accounts.models import User
from chat.models import ChatRoom
from llm.models import AiChatSession
from web.middleware import HEADER

PAGES = ["/rooms/", "/usage/", "/search/"]


class ScriptAudit(HTMLParser):
    """Collects <script> tags and inline event-handler attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.inline_script = False
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.handlers += [name for name in found if name.startswith("on")]
        if tag == "script":
            self.scripts.append(found)
            self._in_script = found

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        script = self._in_script
        if script is not None and data.strip() and script.get("type") != "application/json":
            self.inline_script = True


def page_data(html: str) -> dict[str, object]:
    match = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))  # type: ignore[no-any-return]


@pytest.fixture
def room(room: ChatRoom) -> ChatRoom:
    """The shared room, under a name that would end a <script> block if it were not escaped."""
    room.name = "</script><script>alert(1)</script>"
    room.save(update_fields=["name"])
    return room


def test_home_sends_visitors_to_sign_in_and_members_to_their_rooms(
    client_for: Callable[[User | None], Client], alice: User
) -> None:
    assert client_for(None).get("/")["Location"] == "/login/"
    assert client_for(alice).get("/")["Location"] == "/rooms/"


@pytest.mark.parametrize("path", [*PAGES, f"/rooms/{uuid.uuid4()}/", f"/ai/{uuid.uuid4()}/"])
def test_pages_ask_visitors_to_sign_in_first(anon: Client, path: str, db: None) -> None:
    response = anon.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


@pytest.mark.parametrize("path", ["/login/", "/signup/"])
def test_sign_in_pages_render_with_labelled_fields(anon: Client, path: str, db: None) -> None:
    response = anon.get(path)
    assert response.status_code == 200
    html = response.content.decode()
    for field in ("username", "password"):
        assert f'<label for="{field}">' in html
        assert f'id="{field}"' in html
    assert page_data(html)["user"] is None


def test_sign_in_page_sends_a_signed_in_user_on_only_to_a_local_next(
    client_for: Callable[[User | None], Client], alice: User
) -> None:
    c = client_for(alice)
    assert c.get("/login/?next=/usage/")["Location"] == "/usage/"
    assert c.get("/login/?next=https://evil.example/")["Location"] == "/rooms/"
    assert c.get("/login/?next=//evil.example/")["Location"] == "/rooms/"


@pytest.mark.parametrize("path", PAGES)
def test_signed_in_pages_render(
    client_for: Callable[[User | None], Client], alice: User, path: str
) -> None:
    response = client_for(alice).get(path)
    assert response.status_code == 200
    data = page_data(response.content.decode())
    assert data["user"] == {"id": alice.pk, "username": "alice", "is_staff": False}
    assert data["ai_username"] == "AI_Assistant"


def test_room_page_shows_the_room_to_members_and_escapes_its_name(
    client_for: Callable[[User | None], Client], room: ChatRoom, bob: User
) -> None:
    response = client_for(bob).get(f"/rooms/{room.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert page_data(html)["room_id"] == str(room.pk)
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "</script><script>alert(1)" not in html
    audit = ScriptAudit()
    audit.feed(html)
    assert not audit.inline_script


def test_room_page_is_not_found_for_others_exactly_as_for_no_room(
    client_for: Callable[[User | None], Client], room: ChatRoom, carol: User
) -> None:
    c = client_for(carol)
    other = uuid.uuid4()
    theirs = c.get(f"/rooms/{room.pk}/")
    missing = c.get(f"/rooms/{other}/")
    assert theirs.status_code == missing.status_code == 404

    def generic(html: bytes, room_id: object) -> bytes:
        html = html.replace(str(room_id).encode(), b"ID")
        return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", html)

    assert generic(theirs.content, room.pk) == generic(missing.content, other)
    assert c.get("/rooms/not-a-uuid/").status_code == 404


def test_session_page_opens_for_members_and_is_not_found_for_others(
    client_for: Callable[[User | None], Client], room: ChatRoom, bob: User, carol: User
) -> None:
    session = AiChatSession.objects.create(room=room, created_by=bob, model="gpt-4o-mini")
    response = client_for(bob).get(f"/ai/{session.pk}/")
    assert response.status_code == 200
    assert page_data(response.content.decode())["session_id"] == str(session.pk)
    assert client_for(carol).get(f"/ai/{session.pk}/").status_code == 404
    assert client_for(bob).get(f"/ai/{uuid.uuid4()}/").status_code == 404


def test_usage_page_shows_the_by_user_chart_to_staff_only(
    client_for: Callable[[User | None], Client], make_user: Callable[..., User]
) -> None:
    staff = make_user("boss", is_staff=True)
    member = make_user("member")
    staff_html = client_for(staff).get("/usage/").content.decode()
    member_html = client_for(member).get("/usage/").content.decode()
    charts = ("chart-tokens-day", "chart-cost-day", "chart-model", "chart-room", "chart-session")
    for chart in charts:
        assert f'id="{chart}"' in staff_html
        assert f'id="{chart}"' in member_html
    assert 'id="chart-user"' in staff_html
    assert 'id="chart-user"' not in member_html


# --- Content-Security-Policy ----------------------------------------------------------------


def _policy(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize("path", ["/login/", "/signup/", "/jsi18n/"])
def test_pages_forbid_inline_script(anon: Client, path: str, db: None) -> None:
    response = anon.get(path)
    policy = _policy(response[HEADER])
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["require-trusted-types-for"] == ["'script'"]
    assert "'unsafe-inline'" not in response[HEADER]
    assert "'unsafe-eval'" not in response[HEADER]


def test_every_page_passes_its_own_policy(
    client_for: Callable[[User | None], Client], room: ChatRoom, alice: User
) -> None:
    signed_in = client_for(alice)
    session = AiChatSession.objects.create(room=room, created_by=alice, model="gpt-4o-mini")
    pages = [(signed_in, p) for p in [*PAGES, f"/rooms/{room.pk}/", f"/ai/{session.pk}/"]]
    pages += [(client_for(None), p) for p in ["/login/", "/signup/"]]
    for c, path in pages:
        response = c.get(path)
        assert HEADER in response, path
        audit = ScriptAudit()
        audit.feed(response.content.decode())
        assert not audit.inline_script, path
        assert audit.handlers == [], path
        for script in audit.scripts:
            assert script.get("src") or script.get("type") == "application/json", (path, script)


def test_the_api_and_admin_keep_their_own_headers(
    client_for: Callable[[User | None], Client], alice: User
) -> None:
    assert HEADER not in client_for(alice).get("/api/auth/me/")
    assert HEADER not in client_for(None).get("/admin/login/")


# --- languages ------------------------------------------------------------------------------


def test_pages_are_korean_by_default(anon: Client, db: None) -> None:
    html = anon.get("/login/").content.decode()
    assert '<html lang="ko">' in html
    assert "<h1>로그인</h1>" in html
    assert '<label for="password">비밀번호</label>' in html


def test_pages_are_english_when_the_browser_asks(anon: Client, db: None) -> None:
    response = anon.get("/login/", headers={"accept-language": "en-US,en;q=0.9"})
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "<h1>Sign in</h1>" in html
    assert response["Content-Language"] == "en"
    assert "Accept-Language" in response["Vary"]


def test_an_unsupported_language_falls_back_to_korean(anon: Client, db: None) -> None:
    html = anon.get("/login/", headers={"accept-language": "fr-FR,fr;q=0.9"}).content.decode()
    assert '<html lang="ko">' in html


def test_the_language_buttons_override_the_browser(anon: Client, db: None) -> None:
    anon.get("/login/")
    response = anon.post(
        "/i18n/setlang/",
        {
            "language": "en",
            "next": "/login/",
            "csrfmiddlewaretoken": anon.cookies["csrftoken"].value,
        },
        headers={"accept-language": "ko"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    html = anon.get("/login/", headers={"accept-language": "ko"}).content.decode()
    assert "<h1>Sign in</h1>" in html


def test_the_javascript_catalog_follows_the_language(anon: Client, db: None) -> None:
    korean = anon.get("/jsi18n/").content.decode()
    english = anon.get("/jsi18n/", headers={"accept-language": "en"}).content.decode()
    assert "\\uc5f0\\uacb0\\ub428" in korean or "연결됨" in korean  # "Connected"
    assert "연결됨" not in english
    assert "\\uc5f0\\uacb0\\ub428" not in english
