"""Drive headless Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe): no websocket
library, no network. Used by the report's browser test."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
]
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """The Chromium binary, installing Debian's `chromium` package when missing; else (None, why)."""
    found = find_chromium()
    if found:
        return found, ""
    apt = shutil.which("apt-get")
    if apt is None:
        return None, "Chromium is not installed and apt-get is not available to install it"
    if os.geteuid() != 0:
        return None, "Chromium is not installed and installing it with apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update"], [apt, "install", "-y", "chromium"]):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        except (OSError, subprocess.TimeoutExpired) as err:
            return None, f"`{' '.join(command)}` failed: {err}"
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            return None, f"`{' '.join(command)}` exited {done.returncode}: {tail}"
    found = find_chromium()
    return (found, "") if found else (None, "apt-get installed chromium but no chromium binary is on PATH")


class Browser:
    """One headless Chromium with a DevTools session on a page."""

    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="deepmine-chromium-")
        cmd_read, self._cmd_write = os.pipe()  # we write commands; Chromium reads them on fd 3
        self._res_read, res_write = os.pipe()  # Chromium writes answers and events on fd 4

        def wire() -> None:  # in the child, before exec: put the pipe ends on fds 3 and 4
            a = fcntl.fcntl(cmd_read, fcntl.F_DUPFD_CLOEXEC, 10)
            b = fcntl.fcntl(res_write, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=wire,  # only dup2 calls, safe enough before exec
        )
        os.close(cmd_read)
        os.close(res_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._res_read], [], [], left)
            if ready:
                chunk = os.read(self._res_read, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (it exited)")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + self.timeout
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing anyway
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_write, self._res_read):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


def open_page(binary: str, page: Path, screenshot: Path, width: int = 1280) -> dict[str, Any]:
    """Load ``page`` and report console errors, exceptions, failed and external requests, the element ids,
    and a full-page screenshot written to ``screenshot``."""
    browser = Browser(binary)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        ids = browser.send(
            "Runtime.evaluate",
            {"expression": "Array.from(document.querySelectorAll('[id]')).map(e => e.id)", "returnByValue": True},
            session=session,
        )["result"]["value"]
        images = browser.send(
            "Runtime.evaluate",
            {
                "expression": "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length",
                "returnByValue": True,
            },
            session=session,
        )["result"]["value"]
        metrics = browser.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 16000), "scale": 1},
            },
            session=session,
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        events = browser.events
    finally:
        browser.close()
    console_errors = [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert")
    ]
    console_errors += [e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"]
    console_errors += [
        e["params"]["entry"]
        for e in events
        if e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error"
    ]
    requests = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return {
        "console_errors": console_errors,
        "failed_requests": [e["params"] for e in events if e.get("method") == "Network.loadingFailed"],
        "external_requests": [u for u in requests if not u.startswith(("file:", "data:", "about:"))],
        "broken_images": images,
        "ids": ids,
        "height": size["height"],
    }
