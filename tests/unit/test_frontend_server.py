"""The local front-end server: compressed text files, validators, and config.js never cached."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator

import pytest
import requests

from local import frontend
from tests.localstack import free_port


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    port = free_port()
    server = frontend.bind("127.0.0.1", port)
    frontend.configure(server, api_url="http://127.0.0.1:1", api_key="k" * 16)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def raw(url: str, **headers: str) -> requests.Response:
    """The bytes as sent (requests would otherwise undo the gzip encoding)."""
    response = requests.get(url, headers=headers, timeout=5, stream=True)
    response.raw.decode_content = False
    response._content = response.raw.read()  # noqa: SLF001 - the undecoded body
    return response


@pytest.mark.parametrize("path", ["/styles.css", "/js/items.js", "/"])
def test_text_files_are_gzipped_for_browsers_that_accept_it(base: str, path: str) -> None:
    on_disk = (frontend.FRONTEND / (path.lstrip("/") or "index.html")).read_bytes()
    zipped = raw(base + path, **{"Accept-Encoding": "gzip, deflate, br"})
    assert zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped.content) == on_disk
    assert len(zipped.content) < len(on_disk) / 2
    assert int(zipped.headers["Content-Length"]) == len(zipped.content)

    plain = raw(base + path, **{"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.content == on_disk
    assert plain.headers["ETag"] != zipped.headers["ETag"]


def test_files_revalidate_with_their_etag(base: str) -> None:
    first = raw(base + "/styles.css", **{"Accept-Encoding": "gzip"})
    assert first.headers["Cache-Control"] == "no-cache"
    again = raw(base + "/styles.css", **{"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.content == b""
    other = raw(base + "/styles.css", **{"Accept-Encoding": "gzip", "If-None-Match": '"something-else"'})
    assert other.status_code == 200


def test_config_js_is_never_cached_and_missing_files_are_404(base: str) -> None:
    config = raw(base + "/config.js", **{"Accept-Encoding": "gzip"})
    assert config.headers["Cache-Control"] == "no-store"
    assert b"http://127.0.0.1:1" in config.content
    assert raw(base + "/no-such-file.js").status_code == 404
