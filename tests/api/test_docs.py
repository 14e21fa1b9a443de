"""The API docs pages work offline: every asset comes from this server, under a strict policy."""

from __future__ import annotations

import re
from pathlib import Path

import fastapi_offline
import pytest

ASSETS = Path(fastapi_offline.__file__).parent / "static"


@pytest.mark.parametrize(("path", "viewer_script"), [
    ("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_a_docs_page_loads_its_viewer_from_this_server_only(client, path, viewer_script) -> None:
    response = client.get(path)
    assert response.status_code == 200
    page = response.text
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from a CDN
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert [s.split("?")[0] for s in sources] == [f"/static/docs/{viewer_script}"]
    assert '"/openapi.json"' in page
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    assert f'<script nonce="{nonce}">' in page
    assert "script-src 'self' 'nonce-" in policy and "default-src 'none'" in policy
    assert "connect-src 'self'" in policy and "https:" not in policy
    assert client.get(path).headers["content-security-policy"] != policy  # fresh each time


@pytest.mark.parametrize("name", ["swagger-ui-bundle.js", "swagger-ui.css",
                                  "redoc.standalone.js", "favicon.png"])
def test_the_viewers_assets_are_the_installed_packages_files(client, name) -> None:
    response = client.get(f"/static/docs/{name}", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == (ASSETS / name).read_bytes()
    assert response.headers.get("etag")


def test_the_big_scripts_travel_gzipped(client) -> None:
    response = client.get("/static/docs/swagger-ui-bundle.js",
                          headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == (ASSETS / "swagger-ui-bundle.js").read_bytes()  # decoded


def test_an_unknown_asset_is_not_found(client) -> None:
    assert client.get("/static/docs/nope.js").status_code == 404
    assert client.get("/static/docs/../app.py").status_code == 404


def test_the_docs_pages_stay_out_of_the_schema(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/redoc"} & set(paths)
    assert not any(p.startswith("/static") for p in paths)
