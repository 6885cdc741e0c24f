"""The console's security in a real browser: hostile content, tenants, CSRF, sessions, rate limits."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psycopg
import pytest
from playwright.sync_api import BrowserContext

from tests.console.conftest import Tenant, Watched
from tests.support.server import ADMIN_KEY, ServiceProcess, embedded_conninfo, free_port, new_tenant_key

HOSTILE = (
    "<img src=x onerror=alert(1)>",
    "<script>alert('script')</script>",
    '"><svg onload=alert(3)><a href="javascript:alert(4)">click</a>',
)


def _http_sign_in(client: httpx.Client, key: str, origin: str) -> httpx.Response:
    """Sign in as the form does: fetch it (its token and cookie), post the key with the token."""
    form = client.get("/console/login")
    token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
    assert token is not None
    return client.post(
        "/console/login", data={"api_key": key, "signin_token": token.group(1)}, headers={"Origin": origin}
    )


def _session_cookie(context: BrowserContext) -> str:
    values = [c["value"] for c in context.cookies() if c["name"] == "console_session"]
    assert len(values) == 1, context.cookies()
    return values[0]


def test_hostile_content_renders_as_text_and_runs_nothing(console: Watched, new_tenant: type[Tenant]) -> None:
    t = new_tenant()
    ids = [t.add("mallory", text, {"note": "<script>alert('metadata')</script>"}) for text in HOSTILE]
    console.sign_in(t.user_key)
    page = console.page

    console.goto("/users/mallory")
    assert page.locator(".memories .content").all_inner_texts() == list(reversed(HOSTILE))
    for memory_id, text in zip(ids, HOSTILE, strict=True):
        console.goto(f"/memories/{memory_id}")
        assert page.locator("#memory-content").inner_text() == text
        assert page.input_value("#content") == text
        assert "<script>alert('metadata')</script>" in page.locator("pre.json").inner_text()
        assert page.locator("main img, main svg, main script, main iframe").count() == 0
        assert page.locator("a[href^='javascript:']").count() == 0
    console.goto("/users/mallory/search?q=alert")
    assert sorted(page.locator(".memories .content").all_inner_texts()) == sorted(HOSTILE)
    console.goto("/users/mallory/search?q=%3Cscript%3Ealert(1)%3C/script%3E")  # the query is echoed escaped
    assert page.input_value("#q") == "<script>alert(1)</script>"
    assert page.locator("main script").count() == 0
    # The only script of any page is the console's own file.
    assert page.evaluate("[...document.scripts].map(s => new URL(s.src).pathname)") == ["/console/static/console.js"]
    assert not any(url.endswith("/x") for url in console.requests), "the hostile <img src=x> was fetched"
    console.assert_quiet()

    # Defence in depth: were the markup ever inserted unescaped, the policy would still stop it.
    page.evaluate("html => { document.querySelector('main').innerHTML = html }", HOSTILE[0])
    page.wait_for_function("() => document.querySelector('main img') !== null")
    page.wait_for_timeout(300)
    assert console.dialogs == []
    assert any("Content Security Policy" in e for e in console.errors), console.errors

    # Control: the same markup on a page without the policy opens a dialog, and the watcher sees it.
    page.goto("about:blank")
    with page.expect_event("dialog"):
        page.set_content(HOSTILE[0])
    assert console.dialogs == ["alert: 1"]


def test_another_tenants_user_and_memory_are_unreachable(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess
) -> None:
    ours, theirs = new_tenant("ours"), new_tenant("theirs")
    ours.add("olga", "Ours: likes jazz")
    secret = theirs.add("victor", "Theirs: the vault code is 4711")
    console.sign_in(ours.user_key)
    page = console.page

    assert page.locator("table.users td:nth-child(1)").all_inner_texts() == ["olga"]
    assert console.goto("/users/victor") == 404
    assert console.goto(f"/memories/{secret}") == 404
    assert "vault" not in page.content()
    assert console.goto("/users/victor/search?q=vault+code") == 200
    assert page.locator(".memories").count() == 0
    assert "4711" not in page.content()

    # Writes by id are scoped too: edits and deletes of their memory are 404, erasing "victor"
    # erases our tenant's victor (nobody), never theirs.
    token, origin = console.csrf_token(), {"Origin": console_service.url}
    edit = page.request.post(
        console.url(f"/memories/{secret}"), form={"csrf_token": token, "content": "mine now"}, headers=origin
    )
    delete = page.request.post(console.url(f"/memories/{secret}/delete"), form={"csrf_token": token}, headers=origin)
    assert (edit.status, delete.status) == (404, 404)
    erase = page.request.post(
        console.url("/users/victor/erase"), form={"csrf_token": token, "confirm": "victor"}, headers=origin
    )
    assert erase.ok
    kept = theirs.api.get(f"/v1/memories/{secret}")
    assert kept.status_code == 200
    assert kept.json()["data"]["content"] == "Theirs: the vault code is 4711"
    console.assert_quiet()


@contextmanager
def _attacker_site(target: str, fields: dict[str, str]) -> Iterator[str]:
    """A page on another origin (localhost, not 127.0.0.1) that posts a form to the console."""
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    body = (
        f'<!doctype html><form id="f" method="post" action="{target}">{inputs}</form>'
        '<script>document.getElementById("f").submit()</script>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_forged_cross_site_post_is_refused(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess
) -> None:
    t = new_tenant()
    memory_id = t.add("carol", "Must survive the forged requests")
    console.sign_in(t.user_key)
    page = console.page
    token = console.csrf_token()
    target = console.url(f"/memories/{memory_id}/delete")

    # 1. Another site's page posts a form to the console, in the signed-in browser.
    with _attacker_site(target, {"csrf_token": token}) as attacker:
        with page.expect_response(lambda r: r.url == target) as forged:
            page.goto(attacker)
        assert forged.value.status == 403
        assert forged.value.request.headers["origin"].startswith("http://localhost:")
    assert t.api.get(f"/v1/memories/{memory_id}").status_code == 200

    # 2. A same-origin script that does not know the token.
    console.goto("/users/carol")
    status = page.evaluate(
        "url => fetch(url, {method: 'POST', credentials: 'same-origin', "
        "body: new URLSearchParams({csrf_token: 'guessed'})}).then(r => r.status)",
        target,
    )
    assert status == 403

    # 3. The session cookie and the right token, but from a foreign origin, or with no origin at all.
    cookies = {"console_session": _session_cookie(page.context)}
    with httpx.Client(base_url=console_service.url, cookies=cookies) as client:
        path = f"/console/memories/{memory_id}/delete"
        foreign = client.post(path, data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
        anonymous = client.post(path, data={"csrf_token": token})
        foreign_referer = client.post(path, data={"csrf_token": token}, headers={"Referer": "https://evil.example/x"})
        assert (foreign.status_code, anonymous.status_code, foreign_referer.status_code) == (403, 403, 403)
        assert t.api.get(f"/v1/memories/{memory_id}").status_code == 200
        # Control: the same request from our origin is accepted.
        accepted = client.post(path, data={"csrf_token": token}, headers={"Origin": console_service.url})
        assert accepted.status_code == 303, accepted.text
    assert t.api.get(f"/v1/memories/{memory_id}").status_code == 404

    # 4. Sign-in itself: without the form's token, or from another origin, a key opens nothing.
    with httpx.Client(base_url=console_service.url) as client:
        form = client.get("/console/login")
        signin = re.search(r'name="signin_token" value="([^"]+)"', form.text)
        assert signin is not None
        no_token = client.post("/console/login", data={"api_key": t.user_key}, headers={"Origin": console_service.url})
        cross = client.post(
            "/console/login",
            data={"api_key": t.user_key, "signin_token": signin.group(1)},
            headers={"Origin": "https://evil.example"},
        )
        assert (no_token.status_code, cross.status_code) == (403, 403)
        assert "console_session" not in client.cookies
    console.assert_quiet()


def test_sign_out_ends_the_session_everywhere(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess
) -> None:
    t = new_tenant()
    console.sign_in(t.user_key)
    page = console.page
    old = _session_cookie(page.context)
    with httpx.Client(base_url=console_service.url, cookies={"console_session": old}) as other_device:
        assert other_device.get("/console/users").status_code == 200
        page.click("header button:has-text('Sign out')")
        page.wait_for_url(re.compile(r".*/login\?notice=signed-out$"))
        assert page.locator(".notice").inner_text() == "You are signed out."
        assert not [c for c in page.context.cookies() if c["name"] == "console_session"]
        replayed = other_device.get("/console/users")
        assert replayed.status_code == 303
        assert replayed.headers["location"] == "/console/login?notice=expired"
    assert console.goto("/users") == 200
    assert "/console/login" in page.url
    console.assert_quiet()


def test_revoking_the_key_ends_its_console_sessions(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess
) -> None:
    t = new_tenant()
    console.sign_in(t.user_key)
    keys = t.admin_api.get("/v1/admin/keys", params={"tenant": t.name}).json()["data"]["keys"]
    (user_key,) = [k for k in keys if k["role"] == "user"]
    assert t.admin_api.delete(f"/v1/admin/keys/{user_key['id']}").status_code == 200
    console.goto("/users")
    assert re.search(r"/console/login\?notice=expired$", console.page.url)
    assert "Your session has ended" in console.page.locator(".notice").inner_text()
    console.assert_quiet()


def test_session_cookie_flags_and_security_headers(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess
) -> None:
    t = new_tenant()
    console.sign_in(t.user_key)
    (cookie,) = [c for c in console.page.context.cookies() if c["name"] == "console_session"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"], cookie["secure"]) == (
        True,
        "Strict",
        "/console",
        False,  # plain HTTP here; over HTTPS it is Secure (below)
    )
    assert len(cookie["value"]) >= 43  # 256 random bits
    assert console.page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it

    response = console.page.request.get(console.url("/users"))
    headers = response.headers
    policy = headers["content-security-policy"]
    for directive in ("script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"):
        assert directive in policy
    assert "unsafe-" not in policy
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-ratelimit-limit"]  # the key's limit applies to console pages

    # Behind a TLS proxy (X-Forwarded-Proto from a trusted address) the cookie is Secure.
    https = console_service.url.replace("http://", "https://")
    with httpx.Client(base_url=console_service.url, headers={"X-Forwarded-Proto": "https"}) as client:
        form = client.get("/console/login")
        token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
        assert token is not None
        assert "; Secure" in form.headers["set-cookie"]  # so httpx (on plain HTTP) will not send it back:
        signed_in = client.post(
            "/console/login",
            data={"api_key": t.user_key, "signin_token": token.group(1)},
            headers={"Origin": https, "Cookie": f"console_signin={token.group(1)}"},
        )
        assert signed_in.status_code == 303
        session_header = [h for h in signed_in.headers.get_list("set-cookie") if h.startswith("console_session=")]
        assert len(session_header) == 1
        assert "; Secure" in session_header[0]
        assert "; HttpOnly" in session_header[0]


def test_console_pages_count_against_the_keys_rate_limit(console_service: ServiceProcess) -> None:
    with console_service.client(ADMIN_KEY) as admin:
        key = new_tenant_key(admin, "console-limited", rate_limit=3)
    with httpx.Client(base_url=console_service.url) as client:
        signed_in = _http_sign_in(client, key, console_service.url)
        assert signed_in.status_code == 303  # 1
        assert signed_in.headers["x-ratelimit-limit"] == "3"
        assert [client.get("/console/users").status_code for _ in range(2)] == [200, 200]  # 2, 3
        refused = client.get("/console/users")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "Too many requests" in refused.text
        assert refused.headers["content-security-policy"]


def test_wrong_keys_are_refused_without_echoing_them(console: Watched, console_service: ServiceProcess) -> None:
    console.goto("/login")
    page = console.page
    wrong = "m0sk_this-is-not-a-key-" + "z" * 20
    page.fill("#api_key", wrong)
    page.press("#api_key", "Enter")
    page.wait_for_selector("#login-error")
    assert page.locator("#login-error").inner_text() == "That key is not valid."
    assert page.input_value("#api_key") == ""
    assert wrong not in page.content()
    assert wrong not in console_service.logs()
    assert not [c for c in page.context.cookies() if c["name"] == "console_session"]
    assert console.errors == [] or all("401" in e for e in console.errors)
    assert console.dialogs == []


@pytest.mark.parametrize(
    ("kept", "ended"),
    [
        # idle: 29 minutes without a request keep the session (and restart its clock); 31 end it
        ("last_seen_at = now() - interval '29 minutes'", "last_seen_at = now() - interval '31 minutes'"),
        # absolute: a session in use still ends at its deadline
        ("expires_at = now() + interval '1 minute'", "expires_at = now() - interval '1 second'"),
    ],
    ids=["idle", "absolute"],
)
def test_sessions_expire_when_idle_and_at_their_deadline(
    console_service: ServiceProcess, new_tenant: type[Tenant], kept: str, ended: str
) -> None:
    """Time is moved by moving the session's own timestamps in the service's database."""
    t = new_tenant()
    with httpx.Client(base_url=console_service.url) as client:
        assert _http_sign_in(client, t.user_key, console_service.url).status_code == 303
        id_hash = hashlib.sha256(str(client.cookies["console_session"]).encode()).hexdigest()
        with psycopg.connect(embedded_conninfo(console_service.data_dir), autocommit=True) as db:
            db.execute(f"UPDATE console_sessions SET {kept} WHERE id_hash = %s", (id_hash,))
            assert client.get("/console/users").status_code == 200
            db.execute(f"UPDATE console_sessions SET {ended} WHERE id_hash = %s", (id_hash,))
            ended_response = client.get("/console/users")
        assert ended_response.status_code == 303
        assert ended_response.headers["location"] == "/console/login?notice=expired"


def test_signing_in_again_replaces_the_session(console_service: ServiceProcess, new_tenant: type[Tenant]) -> None:
    """A sign-in form posted from a browser that still has a session (a second tab) replaces that
    session: the old one ends, so none outlives its replacement (no fixation, nothing left over)."""
    t = new_tenant()
    with httpx.Client(base_url=console_service.url) as first_tab:
        assert _http_sign_in(first_tab, t.user_key, console_service.url).status_code == 303
        first = str(first_tab.cookies["console_session"])
    with httpx.Client(base_url=console_service.url) as second_tab:
        form = second_tab.get("/console/login")
        token = re.search(r'name="signin_token" value="([^"]+)"', form.text)
        assert token is not None
    with httpx.Client(base_url=console_service.url) as browser:  # both tabs' cookies, as one browser sends them
        again = browser.post(
            "/console/login",
            data={"api_key": t.admin_key, "signin_token": token.group(1)},
            headers={
                "Origin": console_service.url,
                "Cookie": f"console_session={first}; console_signin={token.group(1)}",
            },
        )
        assert again.status_code == 303
        second = again.cookies["console_session"]
        assert second != first
        admin_page = browser.get("/console/users", headers={"Cookie": f"console_session={second}"})
        assert "API keys" in admin_page.text  # the admin's session now
        old = browser.get("/console/users", headers={"Cookie": f"console_session={first}"})
        assert old.headers["location"] == "/console/login?notice=expired"
