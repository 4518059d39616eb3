"""The client's files themselves: no HTML sinks in the scripts, and translations that are
complete and compiled (the .mo files are committed, so a fresh checkout needs no gettext)."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

WEB = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((WEB / "static" / "web" / "js").rglob("*.js"))
TEMPLATES = sorted((WEB / "templates").rglob("*.html"))
LOCALE = WEB / "locale" / "ko" / "LC_MESSAGES"

# Assignments and calls that turn a string into markup or code.
SINKS = re.compile(
    r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\s*\("
    r"|createContextualFragment|DOMParser|srcdoc"
)


def parse_po(path: Path) -> list[tuple[str, str | None, str]]:
    """(msgid, msgid_plural, msgstr or msgstr[0]) of each entry of a .po file but the header."""
    entries: list[tuple[str, str | None, str]] = []
    current: dict[str, str] = {}
    key = ""

    def flush() -> None:
        if current.get("msgid"):
            text = current.get("msgstr", current.get("msgstr[0]", ""))
            entries.append((current["msgid"], current.get("msgid_plural"), text))

    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(msgid|msgid_plural|msgstr(?:\[\d+\])?) (\".*\")$", line)
        if match:
            if match.group(1) == "msgid":
                flush()
                current = {}
            key = match.group(1)
            current[key] = ast.literal_eval(match.group(2))
        elif line.startswith('"'):
            current[key] += ast.literal_eval(line)
        elif line.startswith("#, fuzzy") and current.get("msgid"):
            pytest.fail(f"fuzzy entry in {path.name}")
    flush()
    return entries


def translated(domain: str) -> dict[str, str]:
    catalog: dict[str, str] = {}
    for msgid, plural, text in parse_po(LOCALE / f"{domain}.po"):
        catalog[msgid] = text
        if plural is not None:
            catalog[plural] = text
    return catalog


def strings_in_scripts() -> set[str]:
    found: set[str] = set()
    literal = r'"((?:[^"\\]|\\.)*)"'
    for path in SCRIPTS:
        text = path.read_text(encoding="utf-8")
        found |= {ast.literal_eval(f'"{s}"') for s in re.findall(rf"\bgettext\(\s*{literal}", text)}
        for one, many in re.findall(rf"\bngettext\(\s*{literal},\s*{literal}", text):
            found |= {ast.literal_eval(f'"{one}"'), ast.literal_eval(f'"{many}"')}
    return found


def strings_in_templates() -> set[str]:
    found: set[str] = set()
    for path in TEMPLATES:
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'{%\s*translate\s+"([^"]+)"', text))
        found |= set(re.findall(r"{%\s*translate\s+'([^']+)'", text))
    return found


def test_there_are_scripts_to_check() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_build_the_dom_without_html_strings(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not SINKS.findall(text)
    assert 'setAttribute("style"' not in text


@pytest.mark.parametrize(
    ("domain", "strings"), [("django", strings_in_templates), ("djangojs", strings_in_scripts)]
)
def test_every_string_of_the_client_has_a_korean_translation(domain: str, strings: object) -> None:
    catalog = translated(domain)
    wanted = strings()  # type: ignore[operator]
    assert wanted
    missing = sorted(s for s in wanted if not catalog.get(s))
    assert missing == [], f"run makemessages and translate these in {domain}.po"


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_compiled_catalogs_match_their_sources(domain: str) -> None:
    with (LOCALE / f"{domain}.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for msgid, plural, msgstr in parse_po(LOCALE / f"{domain}.po"):
        found = compiled.gettext(msgid) if plural is None else compiled.ngettext(msgid, plural, 2)
        assert found == msgstr, f"{domain}.mo is out of date (run compilemessages): {msgid!r}"


def test_templates_name_only_static_files_that_exist() -> None:
    for path in TEMPLATES:
        for name in re.findall(r"{%\s*static\s+'([^']+)'", path.read_text(encoding="utf-8")):
            assert finders.find(name), f"{path.name}: {name}"


def test_scripts_import_only_modules_that_exist() -> None:
    for path in SCRIPTS:
        for target in re.findall(r'^import .* from "(\.[^"]+)";', path.read_text(), re.M):
            assert (path.parent / target).resolve().is_file(), f"{path.name}: {target}"
