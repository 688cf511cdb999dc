"""The demo video: the committed one is 1-2 minutes of H.264 whose frames change; assembly
turns captioned stills into a video of the summed durations."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vigil.reports.video import Frame, assemble, duration_seconds

ROOT = Path(__file__).resolve().parents[2]
VIDEO, GIF = ROOT / "docs" / "demo.mp4", ROOT / "docs" / "demo.gif"
MAX_BYTES = 5_000_000


def require_ffmpeg() -> None:
    """ffmpeg and ffprobe; CI installs them (.ci/run), so there a missing one fails."""
    if shutil.which("ffmpeg") and shutil.which("ffprobe"):
        return
    if os.environ.get("CI"):
        pytest.fail("ffmpeg is not installed: apt-get install ffmpeg")
    pytest.skip("ffmpeg is not installed")


def frame_at(video: Path, seconds: float, out: Path) -> Path:
    """The frame shown at ``seconds``, as PNG."""
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-ss", f"{seconds:.2f}", "-i", str(video),
         "-frames:v", "1", str(out)],
        check=True,
    )  # fmt: skip
    return out


def codec(video: Path) -> str:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name", "-of", "csv=p=0", str(video)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_the_committed_demo_is_one_to_two_minutes_of_changing_h264(tmp_path: Path) -> None:
    require_ffmpeg()
    assert 60 <= duration_seconds(VIDEO) <= 120
    assert codec(VIDEO) == "h264"
    assert VIDEO.stat().st_size < MAX_BYTES and GIF.stat().st_size < MAX_BYTES
    shots = [frame_at(VIDEO, t, tmp_path / f"{t}.png").read_bytes() for t in (3, 30, 60)]
    assert len(set(shots)) == 3  # the terminal, the API and the UI scenes all differ


def test_assemble_shows_each_still_for_its_duration(tmp_path: Path) -> None:
    require_ffmpeg()
    frames = []
    for colour, seconds in (("red", 1.0), ("green", 2.0), ("blue", 1.0)):
        image = tmp_path / f"{colour}.png"
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"color={colour}:s=320x240",
             "-frames:v", "1", str(image)],
            check=True,
        )  # fmt: skip
        frames.append(Frame(image, seconds, colour))
    video = assemble(frames, tmp_path / "out.mp4", tmp_path / "out.gif")
    assert duration_seconds(video) == pytest.approx(4.0, abs=0.3)
    first, middle = (frame_at(video, t, tmp_path / f"at{t}.png") for t in (0.5, 2.0))
    assert first.read_bytes() != middle.read_bytes()
    assert (tmp_path / "out.gif").stat().st_size > 0
