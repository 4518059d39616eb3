"""Static files in production: collected with hashed names, served compressed and cached for
good by WhiteNoise (the image runs `collectstatic` when it is built)."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("static")
    with override_settings(
        STATIC_ROOT=root,
        STORAGES=PRODUCTION_STORAGES,
        WHITENOISE_USE_FINDERS=False,
        WHITENOISE_AUTOREFRESH=False,
        DEBUG=False,
    ):
        call_command("collectstatic", interactive=False, verbosity=0)
        yield root


def test_collectstatic_writes_hashed_and_compressed_files(collected):
    manifest = (collected / "staticfiles.json").read_text()
    hashed = re.search(r'"admin/css/base\.css": "(admin/css/base\.[0-9a-f]{12}\.css)"', manifest)
    assert hashed, "admin/css/base.css is not in the manifest"
    assert (collected / hashed.group(1)).is_file()
    assert (collected / (hashed.group(1) + ".gz")).is_file()


def test_static_files_are_served_compressed_and_cached_for_good(collected):
    hashed = re.search(
        r'"admin/css/base\.css": "([^"]+)"', (collected / "staticfiles.json").read_text()
    )
    assert hashed
    url = f"/static/{hashed.group(1)}"
    plain_text = (collected / hashed.group(1)).read_bytes()
    # WhiteNoise reads STATIC_ROOT when the middleware starts: a fresh client starts it here.
    client = Client()
    r = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert r.status_code == 200
    assert r["Content-Encoding"] == "gzip"
    assert r["Vary"] == "Accept-Encoding"
    assert "immutable" in r["Cache-Control"]
    assert "max-age=315360000" in r["Cache-Control"]
    assert gzip.decompress(b"".join(r.streaming_content)) == plain_text

    r = client.get(url)  # a client that takes no compression
    assert "Content-Encoding" not in r
    assert b"".join(r.streaming_content) == plain_text

    # The unhashed name is served too, but must be revalidated: it changes with the code.
    r = client.get("/static/admin/css/base.css")
    assert r.status_code == 200
    assert "immutable" not in r["Cache-Control"]
