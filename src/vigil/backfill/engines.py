"""Where bucket tasks run: in this process, or on a Dask distributed cluster (ADR 0021).

An engine maps a picklable function over independent items and returns the results in item
order. :class:`DaskEngine` connects to a running scheduler (``tcp://host:8786``, e.g. the
``dask-scheduler`` of a Kubernetes Job) or starts a local cluster of worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    """Runs independent tasks."""

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[function(item) for item in items]``, computed wherever the engine runs tasks."""

    def close(self) -> None:
        """Release the cluster (if this engine started it)."""


class LocalEngine:
    """Every task in this process, one after the other (the reference, and small builds)."""

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Run the tasks in order."""
        return [function(item) for item in items]

    def close(self) -> None:
        """Nothing to release."""


class DaskEngine:
    """Tasks on Dask distributed: a scheduler at ``address``, or a local cluster of
    ``workers`` single-threaded processes (the features engine parallelises inside a task)."""

    def __init__(self, address: str | None = None, workers: int = 2) -> None:
        from distributed import Client, LocalCluster

        self._cluster: Any = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never clash with another cluster
            )
            address = self._cluster.scheduler_address
        self.client = Client(address)

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Submit every task, then gather the results in item order (a failed task raises)."""
        futures = self.client.map(function, list(items), pure=False)
        return list(self.client.gather(futures))

    def close(self) -> None:
        """Close the client, and the local cluster if this engine started one."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_engine(scheduler: str, workers: int) -> Engine:
    """``local`` (this process), ``dask`` (a local Dask cluster of ``workers`` processes) or a
    Dask scheduler address ``tcp://host:port``."""
    if scheduler == "local":
        return LocalEngine()
    if scheduler == "dask":
        return DaskEngine(workers=workers)
    if scheduler.startswith(("tcp://", "tls://")):
        return DaskEngine(address=scheduler)
    raise ValueError(f"unknown scheduler {scheduler!r}: local, dask or tcp://host:port")
