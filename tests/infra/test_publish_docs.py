"""The deploy publishes /docs/ with the Swagger UI bundled from the pinned package, or refuses to."""

from __future__ import annotations

import shutil

import pytest

from infra import deploy


def test_the_published_front_end_holds_the_docs_and_their_swagger_ui():
    files = deploy.frontend_files("https://api.example.com")
    assert {"docs/index.html", "docs/docs.js", deploy.SWAGGER_UI_BUNDLE, "docs/swagger-ui/swagger-ui.css"} <= set(files)
    assert files[deploy.SWAGGER_UI_BUNDLE] == (deploy.FRONTEND_DIR / deploy.SWAGGER_UI_BUNDLE).read_bytes()


def test_publishing_docs_without_their_swagger_ui_is_refused(tmp_path):
    shutil.copytree(deploy.FRONTEND_DIR, tmp_path / "frontend")
    shutil.rmtree(tmp_path / "frontend" / "docs" / "swagger-ui")
    with pytest.raises(deploy.Refused, match="make docs-ui"):
        deploy.frontend_files("https://api.example.com", tmp_path / "frontend")
