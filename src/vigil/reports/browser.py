"""Headless Chromium (Debian's ``chromium`` through Playwright) and local servers to point it at.

Used for the docs' screenshots, the one-pager's PDF and the demo video's frames. Playwright
never downloads a browser here: it drives the system Chromium (``CHROMIUM`` unless the caller
names another executable).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's ``chromium`` package."""
VIEWPORT = (1280, 800)


class BrowserError(RuntimeError):
    """Chromium or a local server needed for a report is missing or did not start."""


def free_port() -> int:
    """A TCP port nobody listens on now (for a server this process starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout_seconds: float = 60.0, process: Any = None) -> None:
    """Poll ``url`` until it answers 200; :class:`BrowserError` on timeout or a dead server."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrowserError(f"the server for {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise BrowserError(f"{url} did not answer within {timeout_seconds:.0f} s")


@contextmanager
def server(
    command: Sequence[str], ready_url: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` until the block ends; its output goes to ``log``. ``env`` is its whole
    environment (None: this process's)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(ready_url, process=process)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def chromium(viewport: tuple[int, int] = VIEWPORT, executable: Path = CHROMIUM) -> Iterator[Any]:
    """A Playwright page in headless Chromium (``--no-sandbox``: we run as root in CI)."""
    if not executable.exists():
        raise BrowserError(f"{executable} not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            width, height = viewport
            context = browser.new_context(viewport={"width": width, "height": height})
            yield context.new_page()
        finally:
            browser.close()
