"""The console behind INSPECT_API_KEY, against a server process: sign-in once, a signed HttpOnly
SameSite=Strict cookie that the REST API accepts too, and state-changing requests refused cross-site."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from api.access import is_public_console_path
from api.app import create_app
from api.session_cookie import COOKIE_NAME
from infra.settings import Settings
from tests.console.conftest import BrowserPage, ConsoleServer, sign_in
from tests.integration.test_access_control import fill


@contextmanager
def signed_in_client(server: ConsoleServer) -> Iterator[httpx.Client]:
    """A client holding the console's cookie (and no key), as a browser does after signing in."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        answer = client.post("/ui/sign-in", data={"key": server.key, "next": "/ui/"},
                             headers={"Origin": server.base_url})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/", answer.text
        yield client


def test_sign_in_sets_a_signed_http_only_strict_cookie(console_server: ConsoleServer) -> None:
    base = console_server.base_url
    page = httpx.get(f"{base}/ui/projects/{uuid.uuid4()}?page=2")
    assert page.status_code == 303
    assert page.headers["location"] == f"/ui/sign-in?next=%2Fui%2Fprojects%2F{page.url.path.split('/')[-1]}%3Fpage%3D2"
    wrong = httpx.post(f"{base}/ui/sign-in", data={"key": "not-the-key", "next": "/ui/"})
    assert wrong.status_code == 401 and "wrong API key" in wrong.text and "not-the-key" not in wrong.text
    assert COOKIE_NAME not in wrong.cookies
    right = httpx.post(f"{base}/ui/sign-in", data={"key": console_server.key, "next": "https://evil.example/"})
    assert right.status_code == 303 and right.headers["location"] == "/ui/"  # never off to another site
    cookie = right.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and console_server.key not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over plain http here; Secure when the request came over https


def test_the_rest_api_takes_the_cookie_and_refuses_it_cross_site(console_server: ConsoleServer) -> None:
    with signed_in_client(console_server) as client:
        own = {"Origin": console_server.base_url}
        assert client.get("/api/projects").status_code == 200
        created = client.post("/api/projects", json={"name": "cookie"}, headers=own)
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        referer_only = client.patch(f"/api/projects/{project_id}", json={"name": "renamed"},
                                    headers={"Referer": f"{console_server.base_url}/ui/"})
        assert referer_only.status_code == 200
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "http://127.0.0.1:1"}, {"Origin": "null"},
                        {"Referer": "http://evil.example/page"}, {}):
            refused = client.patch(f"/api/projects/{project_id}", json={"name": "hijacked"}, headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert "cross-site" in refused.json()["detail"]
        assert client.delete(f"/api/projects/{project_id}", headers={"Origin": "http://evil.example"}
                             ).status_code == 403
        assert client.get(f"/api/projects/{project_id}").json()["name"] == "renamed"
        # A key in a header is judged alone: a wrong one is refused even next to a good cookie.
        assert client.get("/api/projects", headers={"X-API-Key": "wrong"}).status_code == 401
        # Sign-out clears the cookie in the browser.
        out = client.post("/ui/sign-out", headers=own)
        assert out.status_code == 303 and 'inspect_session=""' in out.headers["set-cookie"]
        assert "Max-Age=0" in out.headers["set-cookie"]


def test_a_forged_or_foreign_cookie_opens_nothing(console_server: ConsoleServer) -> None:
    base = console_server.base_url
    from api.session_cookie import SessionCookie

    for token in ("garbage", SessionCookie("another-key").issue(), SessionCookie(console_server.key).issue() + "x"):
        cookies = {COOKIE_NAME: token}
        assert httpx.get(f"{base}/api/projects", cookies=cookies).status_code == 401
        assert httpx.get(f"{base}/ui/", cookies=cookies).status_code == 303


def test_every_console_page_needs_the_session(console_server: ConsoleServer, tmp_path: Path) -> None:
    """Enumerated from the app, so a page added later is covered without being listed here."""
    app = create_app(Settings(data_dir=tmp_path / "routes"))
    checked = 0
    for context in iter_route_contexts(app.routes):
        path = getattr(context, "path", "")
        if not path.startswith("/ui/") or is_public_console_path(path):
            continue
        for method in sorted(set(getattr(context, "methods", None) or ()) - {"HEAD"}):
            answer = httpx.request(method, f"{console_server.base_url}{fill(path)}")
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/ui/sign-in?next="), (method, path)
            checked += 1
    assert checked >= 5


class _ForeignSite(BaseHTTPRequestHandler):
    """Another origin on loopback (same site, other port, like the Prefect UI) with a form aimed at the console."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path != "/":  # the browser's favicon request
            self.send_response(204)
            self.end_headers()
            return
        body = (f'<!DOCTYPE html><form method="post" action="{self.target}/ui/projects">'
                '<input name="name" value="planted"><button type="submit">Go</button></form>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def foreign_site(console_server: ConsoleServer) -> Iterator[str]:
    handler = type("Foreign", (_ForeignSite,), {"target": console_server.base_url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_in_the_browser_sign_in_then_a_foreign_form_is_refused_and_sign_out(
        console: BrowserPage, console_server: ConsoleServer, foreign_site: str) -> None:
    page = console.page
    assert page.get_by_role("heading", name="Projects").is_visible()
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies[COOKIE_NAME]["httpOnly"] and cookies[COOKIE_NAME]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    # A page of another origin posts a form to the console: the browser sends the cookie (same site)...
    console.record.expect_error("status of 403")
    page.goto(foreign_site)
    page.get_by_role("button", name="Go").click()
    page.wait_for_load_state()
    assert "cross-site request refused" in page.content()
    with console_server.api() as api:
        assert "planted" not in [project["name"] for project in api.get("/api/projects").json()]
    # Signing out leads back to the sign-in page, and the console is closed again.
    console.goto("/ui/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/sign-in")
    assert COOKIE_NAME not in {cookie["name"] for cookie in page.context.cookies()}
    console.goto("/ui/jobs")
    assert "/ui/sign-in?next=" in page.url


def test_the_sign_in_form_shows_a_wrong_key_by_the_field(anonymous_page: BrowserPage,
                                                          console_server: ConsoleServer) -> None:
    anonymous_page.record.expect_error("status of 401")
    sign_in_page = anonymous_page.page
    anonymous_page.goto("/ui/")
    assert "/ui/sign-in" in sign_in_page.url
    sign_in_page.get_by_label("API key").fill("wrong")
    sign_in_page.get_by_role("button", name="Sign in").click()
    error = sign_in_page.locator("#key-error")
    assert error.inner_text().strip().endswith("wrong API key")
    assert sign_in_page.get_by_label("API key").get_attribute("aria-invalid") == "true"
    sign_in(anonymous_page, console_server.key)
