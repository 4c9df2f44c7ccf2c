"""The report in headless Chromium: no console errors, no failed or external requests, every section shown.

Chromium (Debian's `chromium` package) is installed with apt-get when missing; without it the test is skipped
with the reason."""

from __future__ import annotations

import pytest
from browser_cdp import ensure_chromium, open_page
from conftest import FAST, make_table

from deepmine.report.build import PROFILE_IDS, SECTION_IDS


@pytest.fixture(scope="module")
def chromium():
    binary, why = ensure_chromium()
    if binary is None:
        pytest.skip(f"headless Chromium is unavailable: {why}")
    return binary


def test_report_opens_cleanly_in_chromium(chromium, run_cli, tmp_path):
    make_table(200).to_csv(tmp_path / "t.csv", index=False)
    args = ("fit", tmp_path / "t.csv", "--target", "label", "--out", tmp_path / "m", *FAST)
    assert run_cli(*args, "--set", "trainer.epochs=4", "--json").code == 0
    screenshot = tmp_path / "report.png"
    page = open_page(chromium, tmp_path / "m" / "report.html", screenshot)
    assert page["console_errors"] == []
    assert page["failed_requests"] == []
    assert page["external_requests"] == []
    assert page["broken_images"] == 0
    missing = [i for i in [*SECTION_IDS.values(), *PROFILE_IDS] if i not in page["ids"]]
    assert missing == []
    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
