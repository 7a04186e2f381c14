"""`/docs` is Swagger UI 5 whose files the server serves itself: the page works offline."""

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.http.docs_ui import ASSETS_PATH
from tests.support.app import make_settings
from tests.support.envelopes import assert_error
from tests.support.fake_engine import FakeEngine

SWAGGER_UI_VERSION = re.compile(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"')
JAVASCRIPT = ("text/javascript", "application/javascript")  # mimetypes differs by platform


class _Links(HTMLParser):
    """Every URL the page loads: script sources, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.icons: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.scripts.append(found["src"] or "")
        if tag == "link" and found.get("rel") == "stylesheet":
            self.styles.append(found.get("href") or "")
        if tag == "link" and "icon" in (found.get("rel") or ""):
            self.icons.append(found.get("href") or "")


def links(client: TestClient) -> _Links:
    response = client.get("/docs")
    assert response.status_code == 200, response.text
    parsed = _Links()
    parsed.feed(response.text)
    return parsed


def test_the_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in response.text
    assert "'/openapi.json'" in response.text
    assert "://" not in response.text  # no CDN, no swagger.io validator


def test_the_page_points_at_the_server_s_own_files(client: TestClient) -> None:
    page = links(client)

    assert page.scripts == [f"{ASSETS_PATH}/swagger-ui-bundle.js"]
    assert page.styles == [f"{ASSETS_PATH}/swagger-ui.css"]
    assert page.icons == [f"{ASSETS_PATH}/favicon.png"]


def test_the_script_is_swagger_ui_5_which_reads_openapi_3_1(client: TestClient) -> None:
    (script,) = links(client).scripts

    response = client.get(script)

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in JAVASCRIPT
    version = SWAGGER_UI_VERSION.search(response.text)
    assert version is not None
    assert int(version[1]) >= 5


def test_the_styles_are_swagger_ui_s(client: TestClient) -> None:
    (styles,) = links(client).styles

    response = client.get(styles)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.text.startswith(".swagger-ui{")


def test_the_icon_is_a_png(client: TestClient) -> None:
    (icon,) = links(client).icons

    response = client.get(icon)

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


def test_an_unchanged_file_is_not_sent_again(client: TestClient) -> None:
    (script,) = links(client).scripts
    etag = client.get(script).headers["etag"]

    response = client.get(script, headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/swagger-ui-bundle.min.js",
        "/docs/assets/",
        "/docs/assets/..%2F__init__.py",
        "/docs/assets/%2E%2E/core.py",
    ],
    ids=["missing", "folder", "encoded-parent", "dotted-parent"],
)
def test_other_paths_are_the_app_s_404(client: TestClient, path: str) -> None:
    unknown = client.get("/no/such/path")

    response = client.get(path)

    assert_error(response, 404, 7000, "No route for that URI")
    assert response.json() == unknown.json()


def test_only_get_is_served(client: TestClient) -> None:
    response = client.post(f"{ASSETS_PATH}/swagger-ui.css")

    assert_error(response, 405, 7001, "POST not supported")


def test_the_page_and_its_files_need_no_token(client: TestClient) -> None:
    page = links(client)  # `client` has api_tokens; no Authorization header is sent

    for url in [*page.scripts, *page.styles, *page.icons]:
        assert client.get(url).status_code == 200, url


def test_neither_the_page_nor_its_files_are_in_the_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert [path for path in paths if path.startswith("/docs")] == []


def test_a_file_request_gets_an_id_like_any_request(client: TestClient) -> None:
    response = client.get(f"{ASSETS_PATH}/swagger-ui.css")

    assert "x-request-id" in response.headers


def test_behind_a_path_prefix_every_url_carries_it(engines: dict[str, FakeEngine]) -> None:
    app = create_app(make_settings(), engines=engines)
    with TestClient(app, root_path="/ai") as client:
        response = client.get("/docs")
        page = _Links()
        page.feed(response.text)

    assert "'/ai/openapi.json'" in response.text
    assert page.scripts == [f"/ai{ASSETS_PATH}/swagger-ui-bundle.js"]
    assert page.styles == [f"/ai{ASSETS_PATH}/swagger-ui.css"]
