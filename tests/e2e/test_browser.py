"""The Prefect UI, in headless Chromium, shows a video run made through the demo's deployment."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from demo import DemoResult

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Decided at collection: without Chromium, no fixture runs, so no stack is started for nothing.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)",
    ),
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
#: Milliseconds the UI gets to fetch and render what a test looks for.
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    """A Chromium page (Debian's /usr/bin/chromium, driven by Playwright), closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def test_flow_run_page_shows_the_run_completed(
    page: Any, on_demand_run: tuple[DemoResult, Any], output_dir: Path
) -> None:
    from playwright.sync_api import expect

    summary, _ = on_demand_run
    page.goto(summary.url)
    header = page.locator(".flow-run-header, .page-heading").first
    expect(header.get_by_text("Completed", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(output_dir / "flow-run.png"), full_page=True)


def test_artifacts_tab_shows_summary_and_progress(
    page: Any, on_demand_run: tuple[DemoResult, Any], output_dir: Path
) -> None:
    from playwright.sync_api import expect

    summary, _ = on_demand_run
    page.goto(summary.url)
    page.get_by_text("Artifacts", exact=True).click()
    expect(page.get_by_text("venice-video-summary", exact=True)).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    # The wait task's progress artifact, keyed or not (the UI then shows its type).
    progress = page.get_by_role("link", name=re.compile(r"\bprogress\b"))
    expect(progress.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(output_dir / "flow-run-artifacts.png"), full_page=True)
