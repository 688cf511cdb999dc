"""``TurnWriter``: a connection's writes of one event-loop turn leave in one transport write."""

from __future__ import annotations

import asyncio

import pytest

from vigil.serving.shedding import TurnWriter, _Turn


class RecordingTransport:
    """The part of an asyncio transport the writer uses, recording every call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def test_writes_of_one_turn_leave_together_after_the_turn() -> None:
    async def scenario() -> tuple[list[bytes], list[bytes], list[bytes]]:
        turn = _Turn()
        first, second = RecordingTransport(), RecordingTransport()
        a, b = TurnWriter(first, turn), TurnWriter(second, turn)  # type: ignore[arg-type]
        a.write(b"head ")
        b.write(b"other")
        a.write(b"body")
        during = list(first.writes)
        await asyncio.sleep(0)  # the rest of the turn
        return during, first.writes, second.writes

    during, first, second = asyncio.run(scenario())

    assert during == []
    assert first == [b"head body"] and second == [b"other"]


def test_close_flushes_first_and_a_closing_transport_gets_nothing() -> None:
    async def scenario() -> tuple[RecordingTransport, RecordingTransport]:
        turn = _Turn()
        closing, late = RecordingTransport(), RecordingTransport()
        writer = TurnWriter(closing, turn)  # type: ignore[arg-type]
        writer.write(b"answer")
        writer.close()
        gone = TurnWriter(late, turn)  # type: ignore[arg-type]
        late.closed = True
        gone.write(b"lost")
        await asyncio.sleep(0)
        return closing, late

    closing, late = asyncio.run(scenario())

    assert closing.writes == [b"answer"] and closing.closed
    assert late.writes == []


def test_other_attributes_are_the_transports() -> None:
    writer = TurnWriter(RecordingTransport(), _Turn())  # type: ignore[arg-type]

    assert writer.get_extra_info("peername") == "extra peername"


def test_is_closing_is_the_transports_own_method(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked after every answer: not through ``__getattr__`` (a failed look-up first)."""
    transport = RecordingTransport()
    writer = TurnWriter(transport, _Turn())  # type: ignore[arg-type]
    monkeypatch.setattr(TurnWriter, "__getattr__", _no_delegation)

    transport.closed = True

    assert writer.is_closing()


def _no_delegation(_writer: TurnWriter, name: str) -> None:
    raise AssertionError(f"{name} reached through __getattr__")
