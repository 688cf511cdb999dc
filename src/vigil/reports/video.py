"""Frames and assembly of the demo video: terminal and browser views with captions, ffmpeg.

A :class:`Recorder` runs real commands and photographs real pages (headless Chromium), each
frame with a caption bar; :func:`assemble` turns the frames into an H.264 MP4 and a GIF.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SIZE = (1280, 720)
TERMINAL_LINES = 24
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
CAPTION_STYLE = (
    "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;padding:14px 24px;"
    "background:rgba(11,61,145,0.93);color:#fff;font:600 22px 'DejaVu Sans',sans-serif;"
)
TERMINAL_PAGE = """<!doctype html><html><head><meta charset='utf-8'><style>
body {{ margin:0; background:#101522; color:#d7dde8; height:720px; overflow:hidden;
       font:16px/1.38 'DejaVu Sans Mono',monospace; }}
.bar {{ background:#232a3b; color:#8a94a8; padding:6px 16px; font-size:14px; }}
pre {{ margin:0; padding:14px 18px; white-space:pre-wrap; word-break:break-all; }}
.cmd {{ color:#7ee787; }}
</style></head><body><div class='bar'>vigil — terminal</div>
<pre><span class='cmd'>$ {command}</span>
{output}</pre></body></html>"""


@dataclass(frozen=True)
class Frame:
    """One still of the video: an image shown for ``seconds``."""

    image: Path
    seconds: float
    caption: str


@dataclass
class Recorder:
    """Collects captioned frames from a Playwright ``page`` into ``folder``."""

    page: Any
    folder: Path
    frames: list[Frame] = field(default_factory=list)

    def _next(self) -> Path:
        return self.folder / f"frame-{len(self.frames):03d}.png"

    def _caption(self, text: str) -> None:
        self.page.evaluate(
            """([text, style]) => {
                let bar = document.getElementById('vigil-caption');
                if (!bar) { bar = document.createElement('div'); bar.id = 'vigil-caption';
                            document.documentElement.appendChild(bar); }
                bar.setAttribute('style', style); bar.textContent = text; }""",
            [text, CAPTION_STYLE],
        )

    def terminal(self, shown: str, output: str, caption: str, seconds: float = 6.0) -> None:
        """A terminal frame: the command as typed and the tail of its real output."""
        lines = ANSI.sub("", output).strip().splitlines()[-TERMINAL_LINES:]
        html = TERMINAL_PAGE.format(command=escape(shown), output=escape("\n".join(lines)))
        self.page.set_content(html)
        self._shoot(caption, seconds)

    def run(
        self,
        command: Sequence[str],
        shown: str,
        caption: str,
        seconds: float = 6.0,
        env: dict[str, str] | None = None,
        show: bool = True,
    ) -> str:
        """Run ``command`` (it must succeed); show its output as a terminal frame if ``show``."""
        result = subprocess.run(
            list(command), capture_output=True, text=True, env=env, check=False, timeout=900
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise RuntimeError(f"{shown} failed ({result.returncode}):\n{output[-3000:]}")
        if show:
            self.terminal(shown, output, caption, seconds)
        return result.stdout

    def browser(
        self,
        url: str,
        caption: str,
        seconds: float = 6.0,
        action: Callable[[Any], None] | None = None,
        wait_ms: int = 2500,
    ) -> None:
        """A browser frame of ``url`` after ``action`` (a click, a scroll) has run."""
        self.page.goto(url, wait_until="load")
        self.page.wait_for_timeout(wait_ms)
        self.still(caption, seconds, action)

    def still(
        self, caption: str, seconds: float = 6.0, action: Callable[[Any], None] | None = None
    ) -> None:
        """A browser frame of the page as it is, after ``action`` has run on it."""
        if action is not None:
            action(self.page)
        self._shoot(caption, seconds)

    def _shoot(self, caption: str, seconds: float) -> None:
        self._caption(caption)
        path = self._next()
        self.page.screenshot(path=str(path))
        self.frames.append(Frame(path, seconds, caption))
        logger.info("frame %s: %s", path.name, caption)


def assemble(frames: Sequence[Frame], mp4: Path, gif: Path | None = None) -> Path:
    """Frames to H.264 (yuv420p, 10 fps, still-image tuned) and an optional small GIF."""
    listing = mp4.with_suffix(".frames.txt")
    entries = [f"file '{f.image.resolve()}'\nduration {f.seconds}" for f in frames]
    # The concat demuxer ignores the last duration unless the last file is listed again.
    listing.write_text("\n".join([*entries, f"file '{frames[-1].image.resolve()}'"]) + "\n")
    mp4.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-vf", f"fps=10,scale={SIZE[0]}:{SIZE[1]},format=yuv420p", "-c:v", "libx264",
         "-preset", "medium", "-tune", "stillimage", "-crf", "30", "-movflags", "+faststart",
         str(mp4)],
        check=True,
    )  # fmt: skip
    listing.unlink()
    if gif is not None:
        palette = "split[a][b];[a]palettegen=max_colors=96[p];[b][p]paletteuse=dither=none"
        subprocess.run(
            ["ffmpeg", "-y", "-loglevel", "error", "-i", str(mp4), "-vf",
             f"fps=1/3,scale=640:-1:flags=lanczos,{palette}", str(gif)],
            check=True,
        )  # fmt: skip
    return mp4


def duration_seconds(video: Path) -> float:
    """The container's duration (ffprobe)."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(video)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(result.stdout.strip())
