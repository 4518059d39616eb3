from __future__ import annotations

import pytest

from chat.mentions import mentioned_keys


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("hi @alice", ["alice"]),
        ("@Bob and @alice, then @BOB again", ["bob", "alice"]),
        ("thanks @alice.", ["alice"]),
        ("mail bob@example.com", []),
        ("@@alice", []),
        ("(@ｃａｒｏｌ)", ["carol"]),  # full-width: the key is the NFKC form
        ("ask @AI_Assistant: why?", ["ai_assistant"]),
        ("@ alone", []),
        ("a.b@c @d.e", ["d.e"]),
    ],
)
def test_mentioned_keys(text, keys):
    assert mentioned_keys(text) == keys
