"""A real browser walks the user's path through the ticket proxy, and loads the status page.

Debian's chromium, headless, driven by Playwright (`executable_path`: never a downloaded
browser), against the demo's machinery in this process: the simulated cluster with one app
whose page keeps a WebSocket open (one ticket, no autoscaling, so the second user must wait).

1. Alice opens the app: she gets a ticket and the app's page, whose WebSocket is open.
2. Bob opens it: the app is full, he sees the waiting room.
3. The status page shows one user on the pod and one waiting.
4. Alice closes her tab; her ticket goes after the idle timeout, and Bob's waiting room lets
   him in by itself (its event stream says `ready`, the page reloads): he sees the app.
5. The status page shows him on the pod and nobody waiting.

Screenshots go to build/screenshots/ (git-ignored). Chromium is installed by `make
integration` (Debian's package, when root); without it the test is skipped, saying why.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio

from rxkube.controllers._cli import open_demo_cluster
from rxkube.controllers._demo import DemoApp, DemoSettings, open_demo

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the Python package playwright is not installed"
)
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (make integration installs it as root with "
        "apt-get install chromium); the browser test cannot run here",
        allow_module_level=True,
    )

APP = DemoApp(
    "chat",
    "websocket",
    8080,
    replicas=1,
    tickets_max=1,
    tickets_spare=0,
    pods_max=0,
    idle_timeout="1s",
)


def walk(proxy_url: str, status_url: str, shots: Path) -> dict[str, Any]:
    """The browser part (Playwright's sync API, in a worker thread)."""
    seen: dict[str, Any] = {}
    app_url = f"{proxy_url}/{APP.name}/"
    with sync_api.sync_playwright() as playwright:
        # Playwright gives every launch a fresh, temporary --user-data-dir of its own.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=TIMEOUT_MS
        )
        try:
            alice = browser.new_context(viewport={"width": 1000, "height": 600})
            bob = browser.new_context(viewport={"width": 1000, "height": 600})
            admin = browser.new_context(viewport={"width": 1280, "height": 800})
            for context in (alice, bob, admin):
                context.set_default_timeout(TIMEOUT_MS)

            # 1. Alice gets a ticket and the app's page; its WebSocket echoes.
            alice_page = alice.new_page()
            response = alice_page.goto(app_url)
            assert response is not None
            seen["alice_status"] = response.status
            alice_page.wait_for_selector("#socket[data-echoes]")
            seen["alice_pod"] = alice_page.text_content("#pod")
            seen["alice_cookies"] = [c["name"] for c in alice.cookies()]
            alice_page.screenshot(path=str(shots / "01-app-page.png"))

            # 2. Bob waits.
            bob_page = bob.new_page()
            response = bob_page.goto(app_url)
            assert response is not None
            seen["bob_status"] = response.status
            seen["bob_heading"] = bob_page.text_content("h1")
            seen["bob_position"] = bob_page.text_content("#position")
            bob_page.screenshot(path=str(shots / "02-waiting-room.png"))

            # 3. The status page: one user on the pod, one waiting.
            status_page = admin.new_page()
            status_page.goto(status_url)
            status_page.wait_for_function(
                "() => document.getElementById('waiting').textContent === '1'"
            )
            seen["status_users"] = status_page.text_content("#users")
            seen["status_pods"] = status_page.eval_on_selector_all(
                "tr[data-pod]", "rows => rows.map(r => r.dataset.pod)"
            )
            status_page.screenshot(path=str(shots / "03-status-page-full.png"), full_page=True)

            # 4. Alice leaves; Bob's waiting room lets him in by itself.
            alice.close()
            bob_page.wait_for_selector("#pod", timeout=TIMEOUT_MS)
            seen["bob_url"] = bob_page.url
            bob_page.wait_for_selector("#socket[data-echoes]")
            seen["bob_pod"] = bob_page.text_content("#pod")
            bob_page.screenshot(path=str(shots / "04-admitted-from-the-waiting-room.png"))

            # 5. The status page follows live: Bob on the pod, nobody waiting.
            status_page.wait_for_function(
                "() => document.getElementById('waiting').textContent === '0'"
                " && document.getElementById('users').textContent === '1'"
            )
            seen["feed"] = status_page.text_content("#feed")
            status_page.screenshot(path=str(shots / "05-status-page-after.png"), full_page=True)
        finally:
            browser.close()
    return seen


async def test_a_browser_gets_a_ticket_waits_is_admitted_and_sees_the_status_page() -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rxkube-browser-") as scratch:
        settings = DemoSettings(
            apps=(APP,),
            pod_start_delay=0.2,
            kubeconfig_out=Path(scratch) / "kubeconfig",
        )
        async with open_demo(settings, open_demo_cluster) as demo:
            seen = await trio.to_thread.run_sync(walk, demo.proxy_url, demo.status_url, SCREENSHOTS)
            stats = demo.controller.statistics().proxy.apps[APP.name]
    assert seen["alice_status"] == 200
    assert seen["alice_pod"].startswith("chat-")
    assert "rxkube-ticket-chat" in seen["alice_cookies"]
    assert seen["bob_status"] == 503
    assert seen["bob_heading"] == "All seats of chat are taken"
    assert seen["bob_position"] == "1"
    assert seen["status_users"] == "1"
    assert seen["status_pods"] == [seen["alice_pod"]]
    assert seen["bob_url"].endswith("/chat/")
    assert seen["bob_pod"] == seen["alice_pod"]  # the one pod, now his
    assert seen["feed"] == "live"  # the status page listens to server-sent events
    assert stats.waiting_pages >= 1
    for name in (
        "01-app-page.png",
        "02-waiting-room.png",
        "03-status-page-full.png",
        "04-admitted-from-the-waiting-room.png",
        "05-status-page-after.png",
    ):
        assert (SCREENSHOTS / name).stat().st_size > 1000
