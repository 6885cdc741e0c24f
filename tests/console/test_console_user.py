"""The console with a user key, in a real browser: browse, search, read, edit, delete, erase, jobs.

What the console shows is checked against what the REST API answers for the same tenant, so each
page is compared with the other surface of the same data, not with what the test typed.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Browser, BrowserContext, Page

from tests.console.conftest import Tenant, Watched, watch
from tests.support.server import ServiceProcess


def _shot(page: Page, directory: Path, name: str, **options: object) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), **options)  # type: ignore[arg-type]


def _api_memory(tenant: Tenant, memory_id: str) -> dict[str, object]:
    response = tenant.api.get(f"/v1/memories/{memory_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def test_a_user_key_browses_users_memories_search_and_one_memory(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess, screenshots: Path
) -> None:
    t = new_tenant()
    t.add("alice", "Prefers vegetarian restaurants in Lisbon", {"source": "chat"})
    t.add("alice", "Works at Acme Corp as a data engineer since 2021")
    violin = t.add("alice", "Her daughter Maya takes violin lessons on Saturdays", {"source": "chat", "mood": "proud"})
    t.add("bob", "Allergic to peanuts")
    page = console.page

    console.sign_in(t.user_key)
    _shot(page, screenshots, "users")
    users = page.locator("table.users tbody tr")
    assert users.locator("td:nth-child(1)").all_inner_texts() == ["alice", "bob"]
    assert users.locator("td:nth-child(2)").all_inner_texts() == ["3", "1"]

    page.click("table.users >> text=alice")
    page.wait_for_url(re.compile(r".*/console/users/alice$"))
    listed = t.api.get("/v1/memories/user/alice").json()["data"]["memories"]
    assert page.locator(".memories .content").all_inner_texts() == [m["content"] for m in listed]
    assert listed[0]["id"] == violin  # newest first, as the API lists them
    entities = t.api.get("/v1/users/alice/entities").json()["data"]["entities"]
    assert entities, "the extractor found no entity to show"
    assert page.locator("ul.entities .entity").all_inner_texts() == [e["name"] for e in entities]
    _shot(page, screenshots, "user")

    # Times: written in UTC, shown by console.js in the viewer's zone (this context: Asia/Tokyo).
    stamp = page.locator(".memories time").first
    iso = str(stamp.get_attribute("datetime"))
    tokyo = datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Tokyo"))
    shown = stamp.inner_text()
    assert f"{tokyo:%H:%M:%S}" in shown, shown
    assert "UTC" not in shown
    assert page.locator("footer [data-tz]").inner_text() == "Times in Asia/Tokyo"

    # Semantic search shows the score the API computes for the same query.
    page.fill("#q", "music lessons for children")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r".*/search\?q=music.*"))
    api_hits = t.api.get(
        "/v1/memories/search", params={"query": "music lessons for children", "user_id": "alice", "limit": 20}
    ).json()["data"]["memories"]
    assert page.locator(".memories .content").all_inner_texts() == [m["content"] for m in api_hits]
    scores = page.locator(".memories .score").all_inner_texts()
    assert scores[0] == f"similarity {api_hits[0]['score']:.3f}"
    assert api_hits[0]["id"] == violin
    _shot(page, screenshots, "search")

    # Full text finds the words themselves, with the text rank.
    page.select_option("select[name=mode]", "text")
    page.fill("#q", "acme")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r".*mode=text.*"))
    assert page.locator(".memories .content").all_inner_texts() == ["Works at Acme Corp as a data engineer since 2021"]
    assert re.fullmatch(r"rank \d+\.\d{3}", page.locator(".memories .score").inner_text())
    page.fill("#q", "kangaroo")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r".*q=kangaroo.*"))
    assert "No memory of alice matches" in page.locator("main").inner_text()

    # One memory: metadata, entities and relationships, history, as the API has them.
    console.goto(f"/memories/{violin}")
    stored = _api_memory(t, violin)
    assert page.locator("#memory-content").inner_text() == stored["content"]
    assert json.loads(page.locator("pre.json").inner_text()) == stored["metadata"]
    relationships = [
        [r["type"], r["entity"], f"{r['confidence']:.2f}"]
        for r in stored["relationships"]  # type: ignore[attr-defined]
    ]
    rows = page.locator("section[aria-labelledby=entities-heading] tbody tr")
    assert [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())] == relationships
    history = t.api.get(f"/v1/memories/{violin}/history").json()["data"]["history"]
    assert page.locator("ol.history .badge").all_inner_texts() == [h["event"] for h in history]
    _shot(page, screenshots, "memory", full_page=True)

    # The key never shows up: not in a URL the browser requested, a page, a cookie, or the log.
    assert not any(t.user_key in url for url in console.requests)
    assert t.user_key not in page.content()
    assert all(t.user_key not in c["value"] for c in page.context.cookies())
    assert t.user_key not in console_service.logs()
    console.assert_quiet()


def test_memories_are_paged_newest_first(console: Watched, new_tenant: type[Tenant]) -> None:
    t = new_tenant()
    for i in range(22):
        t.add("paula", f"Numbered memory {i:02d}")
    console.sign_in(t.user_key)
    console.goto("/users/paula")
    page = console.page
    first = page.locator(".memories .content").all_inner_texts()
    assert first == [f"Numbered memory {i:02d}" for i in range(21, 1, -1)]
    assert "(22, newest first)" in page.locator("#memories-heading").inner_text()
    page.click("a[rel=next]")
    page.wait_for_url(re.compile(r".*cursor=.*"))
    assert page.locator(".memories .content").all_inner_texts() == ["Numbered memory 01", "Numbered memory 00"]
    assert page.locator("a[rel=next]").count() == 0
    console.assert_quiet()


def test_edit_text_and_metadata_then_delete(console: Watched, new_tenant: type[Tenant], screenshots: Path) -> None:
    t = new_tenant()
    memory_id = t.add("dana", "Lives in Berlin", {"source": "chat"})
    console.sign_in(t.user_key)
    console.goto(f"/memories/{memory_id}")
    page = console.page

    page.fill("#content", "Moved from Berlin to Hamburg in 2025")
    metadata = json.loads(page.input_value("#metadata"))
    page.fill("#metadata", json.dumps({**metadata, "confidence": "high"}))
    page.click("button:has-text('Save changes')")
    page.wait_for_url(re.compile(r".*notice=memory-updated$"))
    assert page.locator(".notice").inner_text() == "Memory updated."
    stored = _api_memory(t, memory_id)
    assert stored["content"] == "Moved from Berlin to Hamburg in 2025"
    assert stored["metadata"]["confidence"] == "high"  # type: ignore[index]
    assert stored["metadata"]["source"] == "chat"  # type: ignore[index]
    history = t.api.get(f"/v1/memories/{memory_id}/history").json()["data"]["history"]
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]
    assert page.locator(".diff del").inner_text() == "Lives in Berlin"
    assert page.locator(".diff ins").inner_text() == "Moved from Berlin to Hamburg in 2025"

    # A refused edit says why, keeps what was typed, and changes nothing.
    page.fill("#metadata", "{not json")
    page.click("button:has-text('Save changes')")
    assert "Metadata is not valid JSON" in page.locator("#edit-error").inner_text()
    assert page.input_value("#metadata") == "{not json"
    page.fill("#metadata", json.dumps({"user_id": "someone-else"}))
    page.click("button:has-text('Save changes')")
    assert "keys cannot be removed" in page.locator("#edit-error").inner_text()
    page.fill("#metadata", json.dumps({**metadata, "confidence": "high", "user_id": "someone-else"}))
    page.click("button:has-text('Save changes')")
    assert "reserved" in page.locator("#edit-error").inner_text()
    page.fill("#metadata", '{"confidence": NaN}')
    page.click("button:has-text('Save changes')")
    assert "Metadata cannot be stored: NaN" in page.locator("#edit-error").inner_text()
    nul = page.request.post(
        console.url(f"/memories/{memory_id}"),
        form={"csrf_token": console.csrf_token(), "content": "Lives in\x00Hamburg", "metadata": "{}"},
        headers={"Origin": console.base},
    )
    assert nul.status == 400
    assert "NUL characters are not allowed" in nul.text()
    assert _api_memory(t, memory_id) == stored

    page.click("summary:has-text('Delete this memory')")
    page.click("button:has-text('Delete memory')")
    page.wait_for_url(re.compile(r".*/users/dana\?notice=memory-deleted$"))
    assert t.api.get(f"/v1/memories/{memory_id}").status_code == 404
    assert "No memories for user dana" in page.locator("main").inner_text()
    console.assert_quiet()


def test_erase_a_user_after_typing_its_id(
    console: Watched, new_tenant: type[Tenant], console_service: ServiceProcess, screenshots: Path
) -> None:
    t = new_tenant()
    for text in ("Likes hiking", "Owns a cat named Miso", "Speaks Portuguese"):
        t.add("erin", text)
    t.add("frank", "Stays")
    console.sign_in(t.user_key)
    console.goto("/users/erin")
    page = console.page
    page.click("text=Erase this user")
    page.wait_for_url(re.compile(r".*/users/erin/erase$"))
    assert "deletes all 3 memories of erin" in page.locator("main").inner_text()
    button = page.locator("button:has-text('Erase erin')")
    assert button.is_disabled()
    page.fill("#confirm", "eri")
    assert button.is_disabled()
    page.fill("#confirm", "erin")
    _shot(page, screenshots, "erase")
    assert button.is_enabled()

    # Without the script's help, the server still refuses a confirmation that does not match.
    refused = page.request.post(
        console.url("/users/erin/erase"),
        form={"csrf_token": console.csrf_token(), "confirm": "frank"},
        headers={"Origin": console_service.url},
    )
    assert refused.status == 400
    assert "does not match" in refused.text()
    assert t.api.get("/v1/memories/user/erin").json()["data"]["total"] == 3

    button.click()
    page.wait_for_url(re.compile(r".*/users\?notice=user-erased$"))
    assert t.api.get("/v1/memories/user/erin").json()["data"]["total"] == 0
    assert t.api.get("/v1/memories/user/frank").json()["data"]["total"] == 1
    assert page.locator("table.users td:nth-child(1)").all_inner_texts() == ["frank"]
    console.assert_quiet()


def test_jobs_show_their_state_and_result(console: Watched, new_tenant: type[Tenant], screenshots: Path) -> None:
    t = new_tenant()
    accepted = t.api.post(
        "/v1/memories",
        params={"async": "true"},
        json={"messages": [{"role": "user", "content": "Queued: prefers tea over coffee"}], "user_id": "gina"},
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["data"]["job_id"]
    deadline = time.monotonic() + 60
    while (state := t.api.get(f"/v1/jobs/{job_id}").json()["data"]["state"]) not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"job still {state}"
        time.sleep(0.2)
    assert state == "succeeded"

    console.sign_in(t.user_key)
    console.goto("/jobs")
    page = console.page
    row = page.locator("table.jobs tbody tr")
    assert row.count() == 1
    assert row.locator("td").all_inner_texts()[1:3] == ["succeeded", "1"]
    assert row.locator("td").last.inner_text() == "1 stored"
    _shot(page, screenshots, "jobs")
    row.locator("a").click()
    page.wait_for_url(re.compile(rf".*/jobs/{job_id}$"))
    assert page.locator(".memories .content").all_inner_texts() == ["Queued: prefers tea over coffee"]
    console.assert_quiet()


def _tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches the selector."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_the_keyboard_reaches_the_main_actions(console: Watched, new_tenant: type[Tenant]) -> None:
    t = new_tenant()
    t.add("hana", "Runs marathons")
    keep = t.add("hana", "Plays chess on Sundays")
    console.sign_in(t.user_key)
    console.goto("/users/hana")
    page = console.page

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    _tab_to(page, "#q")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.type("marathon")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/search\?q=marathon.*"))
    _tab_to(page, ".memory-link")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/memories/.*"))
    memory_id = page.url.rsplit("/", 1)[1]
    assert memory_id != keep

    _tab_to(page, "summary")
    page.keyboard.press("Enter")
    _tab_to(page, "button.danger")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*notice=memory-deleted$"))
    assert t.api.get(f"/v1/memories/{memory_id}").status_code == 404
    assert t.api.get(f"/v1/memories/{keep}").status_code == 200

    _tab_to(page, "header button.link")  # sign out, from the keyboard too
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/login\?notice=signed-out$"))
    console.assert_quiet()


def test_phone_width_needs_no_horizontal_scrolling(
    browser: Browser, console_service: ServiceProcess, new_tenant: type[Tenant], screenshots: Path
) -> None:
    t = new_tenant()
    t.add("ivan", "A long memory without spaces: " + "x" * 300)
    memory_id = t.add("ivan", "Commutes by bicycle along the river every morning", {"source": "mobile"})
    phone: BrowserContext = browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True, device_scale_factor=1
    )
    try:
        console = watch(phone, console_service.url)
        console.sign_in(t.user_key)
        page = console.page
        for path in ("/users", "/users/ivan", f"/memories/{memory_id}", "/jobs"):
            assert console.goto(path) == 200
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px"
            if path == "/users/ivan":
                _shot(page, screenshots, "phone-user")
        assert page.locator("nav a:has-text('Users')").is_visible()
        console.assert_quiet()
    finally:
        phone.close()


def test_login_page_screenshot_and_no_script_rendering(
    browser: Browser, console_service: ServiceProcess, new_tenant: type[Tenant], screenshots: Path
) -> None:
    """Without JavaScript every page still works and shows its times in UTC."""
    t = new_tenant()
    t.add("jo", "Reads science fiction")
    plain = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 760})
    try:
        console = watch(plain, console_service.url)
        console.goto("/login")
        _shot(console.page, screenshots, "login")
        console.sign_in(t.user_key)
        console.goto("/users/jo")
        shown = console.page.locator(".memories time").first.inner_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown), shown
        assert console.page.locator("footer [data-tz]").inner_text() == "Times in UTC"
        console.assert_quiet()
    finally:
        plain.close()


def test_the_api_key_is_not_accepted_in_a_url(console_service: ServiceProcess, new_tenant: type[Tenant]) -> None:
    """Sign-in takes the key from the form body only: a key in the query string opens nothing."""
    t = new_tenant()
    with httpx.Client(base_url=console_service.url) as client:
        response = client.get("/console/users", params={"api_key": t.user_key})
        assert response.status_code == 303
        assert response.headers["location"] == "/console/login"
