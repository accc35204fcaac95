"""The explorer against a service that needs a token (RESKERNEL_API_TOKEN): the page loads, its
first API answer is a 401, it asks for the token, and with it the API answers (the token goes
as `Authorization: Bearer`, kept in the tab's sessionStorage)."""

import pytest

TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def server_environment() -> dict[str, str]:
    return {"RESKERNEL_API_TOKEN": TOKEN, "RESKERNEL_WARM_UP": "0"}


def test_the_page_asks_for_the_token_and_sends_it(page, shots):
    page.watch.allow(401)
    page.goto("/?view=jobs")
    page.wait_for_selector("#token-form:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('reskernel-token')") is None
    page.screenshot(path=shots / "token-asked.png")
    page.fill("#token", "not-the-token")
    page.click("#token-form button[type=submit]")
    page.wait_for_load_state()
    page.wait_for_selector("#token-form:not([hidden])")  # refused again: asked again

    answers: list[tuple[str, int, str | None]] = []
    page.on("response", lambda r: answers.append((r.url, r.status, r.request.headers.get("authorization"))))
    page.fill("#token", TOKEN)
    page.click("#token-form button[type=submit]")
    page.wait_for_function("() => document.querySelector('#jobs-table caption')?.textContent.includes('jobs')")
    page.wait_for_function("() => document.getElementById('experiment-name').options.length > 0")
    assert page.is_hidden("#token-form")
    assert page.evaluate("sessionStorage.getItem('reskernel-token')") == TOKEN
    api = [(url, status, auth) for url, status, auth in answers if "/v1/" in url]
    assert api and all(status == 200 and auth == f"Bearer {TOKEN}" for _, status, auth in api), api
    page.screenshot(path=shots / "token.png")
