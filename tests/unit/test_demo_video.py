"""The demo video: the committed one is 1-2 minutes of H.264 whose frames change; assembly
turns captioned stills into a video of the summed durations; the case scenes review the first
queued card that paid at a terminal compromised inside the label delay."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from vigil.reports.demo_cases import find_target, verdict_key
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


# (transaction, card, terminal, time, amount, fraud, scenario): terminal 7 compromised since
# 05-02 (stale: 8 days before 05-10), terminal 9 since 05-10 (fresh)
TRUTH = pd.DataFrame(
    [
        (1, 10, 7, "2018-05-02 08:00", 20.0, 1, 2),
        (2, 11, 7, "2018-05-10 09:00", 30.0, 1, 2),
        (3, 12, 5, "2018-05-10 10:00", 400.0, 1, 3),
        (4, 13, 6, "2018-05-10 11:00", 10.0, 0, 0),
        (5, 14, 9, "2018-05-10 12:00", 45.5, 1, 2),
        (6, 15, 9, "2018-05-10 13:00", 50.0, 1, 2),
    ],
    columns=["transaction_id", "customer_id", "terminal_id", "tx_datetime", "tx_amount",
             "tx_fraud", "tx_fraud_scenario"],
).assign(tx_datetime=lambda f: pd.to_datetime(f["tx_datetime"]))  # fmt: skip


def _queue(*cards: tuple[int, str, list[int]]) -> dict[str, object]:
    return {
        "cases": [
            {"customer_id": card, "status": status, "transactions": [
                {"transaction_id": t} for t in ids]}
            for card, status, ids in cards
        ]
    }  # fmt: skip


@pytest.mark.parametrize(
    ("ids", "key"), [([1], "t"), ([3], "f"), ([4], "l"), ([4, 3], "f"), ([3, 2], "t")]
)
def test_the_demo_analyst_keys_a_card_by_its_simulated_truth(ids: list[int], key: str) -> None:
    assert verdict_key(TRUTH.set_index("transaction_id").loc[ids]) == key


def test_the_case_scenes_review_the_first_card_at_a_freshly_compromised_terminal() -> None:
    day = pd.Timestamp("2018-05-10").date()
    queue = _queue(
        (11, "open", [2]),  # terminal 7: compromised 8 days before, past the delay
        (12, "open", [3]),
        (15, "reviewed", [6]),  # done already: not reviewed again
        (13, "open", [4, 990000001]),  # a made-up payment is no fraud
        (14, "open", [5]),
    )
    target = find_target(lambda d: queue if d == day else _queue(), TRUTH, [day], 7)
    assert (target.day, target.customer_id, target.terminal_id) == (day, 14, 9)
    assert (target.amount, target.compromised_days) == (45.5, 0)
    assert target.before == [(11, "t"), (12, "f"), (13, "l")]
    with pytest.raises(RuntimeError, match="inside the label delay"):
        find_target(lambda d: queue, TRUTH, [day], 0)  # no terminal younger than 0 days
