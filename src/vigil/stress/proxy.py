"""A fault-injecting TCP proxy on loopback: added latency, dropped connections, an outage.

The stress campaign puts one in front of each store the API and the worker use (PostgreSQL,
Redis, RabbitMQ), so network faults between a service and its stores can be injected without
touching the stores: ``latency_s`` delays every chunk in both directions, :meth:`drop` resets
every open connection, and ``refusing`` closes new connections at once (a store that is down
from the service's point of view). It runs on its own asyncio loop in a thread of the
campaign process, outside the services' cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import TypeVar

T = TypeVar("T")
_CHUNK = 65_536


class FaultProxy:
    """``listen_port`` on 127.0.0.1 forwards to ``target``; faults are set from any thread."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.latency_s = 0.0
        self.refusing = False
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def start(self) -> FaultProxy:
        """Listen on a free loopback port (``self.port``) and start forwarding."""
        self._thread.start()
        self._server = self._call(self._listen)
        return self

    async def _listen(self) -> asyncio.Server:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def _call(self, coroutine: Callable[[], Coroutine[object, object, T]]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine(), self._loop).result(30)

    def drop(self) -> int:
        """Reset every open connection (both sides); return how many were cut."""

        async def cut() -> int:
            writers = list(self._writers)
            for writer in writers:
                transport = writer.transport
                transport.abort()
            self._writers.clear()
            return len(writers) // 2

        return self._call(cut)

    def stop(self) -> None:
        """Close the listener and every connection, stop the thread."""
        if self._server is not None:
            self._server.close()
            self.drop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self._writers.difference_update((writer, up_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                if self.latency_s > 0:
                    await asyncio.sleep(self.latency_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
