"""The dashboard end to end in Debian's Chromium on a live server: sign in, create an
environment and watch it go running without a reload, a terminal, a file up and
down byte-identical, metrics charts drawing, a secret made and given to the
environment with a domain allow list from its Network panel, stop, sign out. Every page is
screenshotted (under $SANDBAY_ARTIFACTS, else the test's tmp dir), checked with
axe-core (no serious or critical violations) and must log no console error."""

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.factories import delete, running_env
from tests.support.inside import sh
from tests.support.polling import eventually
from tests.support.server import LiveServer

pytestmark = pytest.mark.usefixtures("sqlite_only")

AXE = Path(__file__).parents[2] / "src/sandbay/web/static/vendor/axe.min.js"
COOKIE = "sandbay_session"
REFUSED_FETCH = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
TWO_OR_MORE = re.compile(r"^([2-9]|\d\d+)$")  # a chart's data-points


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = Path(os.environ.get("SANDBAY_ARTIFACTS") or tmp_path) / "dashboard"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def console_errors() -> list[str]:
    """What the page logs as errors; a test removes those it caused on purpose."""
    return []


@pytest.fixture
def page(server: LiveServer, console_errors: list[str]) -> Iterator[Page]:
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: `make test` installs it (SANDBAY_BROWSER=1 setup)"
    assert AXE.exists(), "axe-core is missing: scripts/setup.sh installs it (scripts/web-vendor.sh)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(
            viewport={"width": 1280, "height": 720}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors = console_errors
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
        assert not errors, f"console errors: {errors}"


def check_page(page: Page, artifacts: Path, name: str) -> None:
    """A screenshot, and axe-core finds nothing serious or critical."""
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{name}: accessibility violations {bad}"


#: What a hostile workload serves: it tries to read the API and the dashboard's page
#: (its CSRF token) with the browser's session, and says what it got in its title.
TRAP = """<!doctype html><title>trap</title><script>
const grab = (path) => fetch(path, {credentials: "include"})
  .then((r) => r.ok ? r.text().then((t) => "read") : "status" + r.status, () => "blocked");
Promise.all([grab("/v1/environments"), grab("/")])
  .then(([api, page]) => { document.title = "done:" + api + ":" + page; });
</script>"""


def _trap_page(server: LiveServer) -> tuple[str, str]:
    """A path-form preview link (with its token) of an environment serving TRAP."""
    with server.client() as api:
        env = running_env(
            api, command=["python3", "-m", "http.server", "8080", "--directory", "/workspace"]
        )
        put = api.put(
            f"/v1/environments/{env['id']}/files",
            params={"path": "/workspace/trap.html"},
            content=TRAP.encode(),
        )
        assert put.status_code in (200, 201), put.text
        link = api.get(f"/v1/environments/{env['id']}/preview/8080").json()
        eventually(
            lambda: api.get(
                f"/preview/{env['id']}/8080/trap.html",
                headers={"X-Sandbay-Preview-Token": link["token"]},
            ).status_code == 200,
            what="the trap page served",
        )  # fmt: skip
    return f"{link['path_url']}trap.html?sandbay_preview_token={link['token']}", env["id"]


def _create_secret_on_its_page(
    page: Page, server: LiveServer, artifacts: Path, name: str, value: str
) -> str:
    """Create the secret from the Secrets page and change its hosts there; the value
    is never shown back. Returns its placeholder."""
    page.get_by_role("navigation").get_by_role("link", name="Secrets").click()
    page.get_by_label("Secret name").fill(name)
    page.locator("#s-value").fill(value)
    page.locator("#s-hosts").fill("api.example.com")
    page.get_by_role("button", name="Create secret").click()
    row = page.locator("#rows tbody tr", has_text=name)
    expect(row).to_contain_text("api.example.com")
    expect(page.locator("#s-value")).to_have_value("")
    row.get_by_role("button", name="Edit").click()
    page.locator("#e-hosts").fill("api.example.com\n*.example.org")
    page.get_by_role("button", name="Save secret").click()
    expect(row).to_contain_text("api.example.com, *.example.org")
    assert value not in page.content()
    check_page(page, artifacts, "secrets")
    return str(page.locator("#out code").inner_text())


def terminal_text(page: Page) -> str:
    return str(page.locator("#terminal .xterm-rows").inner_text())


def test_dashboard_end_to_end(
    page: Page, server: LiveServer, artifacts: Path, tmp_path: Path, console_errors: list[str]
) -> None:
    # Sign in with the API key: a session cookie, HttpOnly, the key nowhere in the page.
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/login")
    check_page(page, artifacts, "login")
    page.get_by_label("API key").fill(server.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Environments")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert server.key not in page.content()
    assert page.evaluate("JSON.stringify(localStorage) + document.cookie") == "{}"

    # Create: the row appears and goes running with no reload (a marker survives).
    name = "web-" + secrets.token_hex(4)
    expect(page.locator("#live")).to_contain_text("Live")
    page.evaluate("window.__noReload = true")
    page.get_by_text("Create an environment").click()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create", exact=True).click()
    row = page.locator("#envs tbody tr", has=page.get_by_role("link", name=name, exact=True))
    expect(row).to_have_attribute("data-state", "running", timeout=90_000)
    assert page.evaluate("window.__noReload") is True
    env_id = row.get_attribute("data-id")
    assert env_id and env_id.startswith("env_")
    expect(row.locator("code.id")).to_have_text(env_id)  # the full id, copyable
    check_page(page, artifacts, "environments")

    # One environment: the terminal answers.
    row.get_by_role("link", name=name).click()
    expect(page).to_have_url(f"{server.url}/environments/{env_id}")
    expect(page.locator("#term-status")).to_have_text("Connected")
    page.locator("#terminal").click()
    page.keyboard.type("echo $((6*7))\n")
    eventually(
        lambda: any(line.strip() == "42" for line in terminal_text(page).splitlines()),
        what="42 in the terminal",
        timeout=30,
    )

    # It follows the window's size, and reattaches when its socket drops.
    wide = page.evaluate("terminal.term.cols")
    page.set_viewport_size({"width": 900, "height": 720})
    cols = eventually(
        lambda: (n := page.evaluate("terminal.term.cols")) < wide and n,
        what="the terminal to fit the narrower window",
        timeout=10,
    )
    page.evaluate(
        "new Promise((done) => { const s = terminal.socket;"
        " s.addEventListener('close', () => setTimeout(done)); s.close(); })"
    )
    expect(page.locator("#term-status")).to_contain_text("reconnecting")
    expect(page.locator("#term-status")).to_have_text("Connected")
    page.locator("#terminal").click()
    page.keyboard.type("stty size\n")
    eventually(
        lambda: any(line.strip().endswith(f" {cols}") for line in terminal_text(page).splitlines()),
        what=f"stty size to say {cols} columns after the reattach",
        timeout=30,
    )
    page.set_viewport_size({"width": 1280, "height": 720})

    # A file up and back down, byte-identical.
    sent = tmp_path / "payload.bin"
    sent.write_bytes(secrets.token_bytes(300_000))
    page.set_input_files("#upload-file", str(sent))
    page.get_by_role("button", name="Upload", exact=True).click()
    link = page.locator("#files").get_by_role("link", name="payload.bin")
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == sent.read_bytes()

    # The metrics charts draw points as samples arrive.
    expect(page.locator("#chart-cpu")).to_have_attribute("data-points", TWO_OR_MORE)
    first = int(page.locator("#chart-mem").get_attribute("data-points") or 0)
    eventually(
        lambda: int(page.locator("#chart-mem").get_attribute("data-points") or 0) > first,
        what="a new metrics point",
        timeout=30,
    )
    check_page(page, artifacts, "environment")

    # Pause and resume from the page; a snapshot taken and a fork made from it.
    actions = page.locator("#env-actions")
    actions.get_by_role("button", name=f"Pause {name}", exact=True).click()
    expect(page.locator("#env-state")).to_have_text("paused", timeout=60_000)
    actions.get_by_role("button", name=f"Resume {name}", exact=True).click()
    expect(page.locator("#env-state")).to_have_text("running", timeout=60_000)
    page.get_by_label("Snapshot name").fill("ui-snap")
    page.get_by_role("button", name="Take snapshot").click()
    expect(page.locator("#snapshots")).to_contain_text("ui-snap")
    page.get_by_role("button", name="Fork", exact=True).click()
    page.get_by_role("button", name="Confirm").click()
    forked = page.locator("#secrets").get_by_role("link")
    expect(forked).to_be_visible(timeout=60_000)
    fork_id = (forked.get_attribute("href") or "").rsplit("/", 1)[-1]
    assert fork_id.startswith("env_")

    # A path-form preview is served on this origin: a workload's page there, opened
    # in this signed-in browser, can neither read the API with the session nor find
    # the session's CSRF token (its documents run sandboxed in an opaque origin).
    trap, trap_env = _trap_page(server)
    tab = page.context.new_page()
    tab.goto(trap)
    tab.wait_for_function("document.title.startsWith('done:')", timeout=30_000)
    assert tab.title() == "done:blocked:blocked", tab.title()
    tab.close()

    # A secret made on the Secrets page (its value only ever in a POST body), then given
    # to the running environment with a domain allow list from its Network panel.
    secret, value = "web_" + secrets.token_hex(3), "sk-web-" + secrets.token_hex(12)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    placeholder = _create_secret_on_its_page(page, server, artifacts, secret, value)
    page.goto(f"{server.url}/environments/{env_id}")
    expect(page.locator("#net-secrets")).to_have_text("none")
    page.evaluate("window.__noReload = true")
    page.get_by_label("Allowed domains").fill("bad name!")
    page.get_by_role("button", name="Save network").click()
    expect(page.locator("#net-error")).to_contain_text("Not saved")
    console_errors.remove(REFUSED_FETCH)  # the browser logs the API's 400 it answered
    page.get_by_label("Allowed domains").fill("PyPI.org, *.pypi.org\nexample.com")
    page.get_by_label("Secrets").fill(f"API_TOKEN={secret}")
    page.get_by_role("button", name="Save network").click()
    expect(page.locator("#net-allow")).to_have_text("pypi.org*.pypi.orgexample.com", timeout=30_000)
    expect(page.locator("#net-secrets")).to_have_text(f"API_TOKEN → {secret}")
    expect(page.locator("#net-error")).to_be_empty()
    assert page.evaluate("window.__noReload") is True
    page.locator("#h-net").scroll_into_view_if_needed()
    check_page(page, artifacts, "environment-network")
    with server.client() as api:
        native = api.get(f"/v1/environments/{env_id}").json()
        assert native["network_domain_allow_list"] == ["pypi.org", "*.pypi.org", "example.com"]
        assert native["secrets"] == {"API_TOKEN": secret}
        assert api.get(f"/v1/secrets/{secret}").json()["placeholder"] == placeholder
    assert not [url for url in urls if value in url]

    # What the policy refuses shows up on the panel, live: the name, the address and port.
    with server.client() as api:
        sh(
            api,
            env_id,
            "getent hosts blocked.example.net;"
            " curl -s -m 5 --resolve pypi.org:80:192.0.2.7 http://pypi.org/; true",
        )
    refused = page.locator("#refusals")
    expect(refused).to_contain_text("dns refused: blocked.example.net", timeout=30_000)
    expect(refused).to_contain_text("pypi.org at 192.0.2.7:80")

    # Stop, confirmed in a dialog: the state changes on the page without a reload.
    page.evaluate("window.__noReload = true")
    page.locator("#env-actions").get_by_role("button", name=f"Stop {name}", exact=True).click()
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#env-state")).to_have_text("stopped", timeout=60_000)
    assert page.evaluate("window.__noReload") is True

    for path, section in [
        ("/work", "work"),
        ("/agents", "agents"),
        ("/instances", "instances"),
        ("/pools", "pools"),
        ("/keys", "keys"),
        ("/usage", "usage"),
    ]:
        page.goto(server.url + path)
        expect(page.locator("#rows thead th").first).to_be_visible()
        check_page(page, artifacts, section)

    # The secret deleted from its page, after a confirmation.
    page.goto(server.url + "/secrets")
    gone = page.locator("#rows tbody tr", has_text=secret)
    gone.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Confirm").click()
    expect(gone).to_have_count(0)
    assert value not in page.content()

    # Sign out: the session ends on the server; its cookie is refused from then on.
    page.goto(server.url + "/")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server.url + "/login")
    with httpx.Client(base_url=server.url, cookies={COOKIE: cookie["value"]}) as old:
        assert old.get("/v1/environments").status_code == 401
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/login")
    with server.client() as api:
        for env in (fork_id, name, trap_env):
            delete(api, env)
        assert api.delete("/v1/snapshots/ui-snap").status_code == 202
