"""The shared online state store on Redis or Redis Cluster: script calls that each touch one slot.

Per customer: a sorted set of transaction ids scored by event time (microseconds, exact in a
double below 2**53), a string of fixed-size rows (time, amount, id) in time order and a sorted
set of the known frauds (same ids and scores); per terminal: the transactions and the known
frauds as sorted sets. The record script adds the transaction (NX: idempotent), trims entries
older than the longest window plus the label delay, refreshes TTLs and returns the raw window
aggregates, so every API replica and worker sees the same state. Counts over the delayed
windows are ``ZCOUNT``s; the customer's own windows (amount sums, the previous transaction,
the amount baseline) are one walk over the rows string (ADR 0010).

An entity's keys share a hash tag (``vigil:features:{c42}:tx``), and a transaction is two
operations, its customer side and its terminal side (:mod:`vigil.features.redis_lua`). On a
single Redis a micro-batch is one script call (EVALSHA) holding all its operations; on Redis
Cluster (``redis+cluster://host:port``) the operations are grouped by slot, one call per slot,
pipelined per node (ADR 0013). A store written by an earlier layout is caught up by replaying
the last 37 days of transactions and labels (``vigil warm-state``). The servers' run ids and a
record of when they were last seen alive let :mod:`vigil.decisions.recovery` notice a restart
or a failover and re-record what it may have lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple

import hiredis
import numpy as np
import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.asyncio.connection import Connection as AsyncConnection
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.crc import key_slot
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterUnreachableError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from vigil.features import redis_lua, redis_verdicts
from vigil.features.state import (
    US_PER_DAY,
    Aggregates,
    Label,
    Transaction,
    WindowSpec,
    epoch_us,
)
from vigil.features.verdicts import Verdict, VerdictAggregates

logger = logging.getLogger(__name__)

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
# A call to a dead master fails within ~0.1 s (503 on the API, the worker retries with its own
# backoff) instead of redis-py's default of seconds of retries; the topology is refreshed on
# the way, so calls succeed again as soon as the cluster has promoted a replica.
_FAILOVER_BACKOFF = ExponentialBackoff(cap=0.05, base=0.01)
_FAILOVER_RETRIES = 2


def _optional(value: Any) -> float | None:
    """A number sent as a string, or ``None`` for the empty string."""
    text = str(value)
    return float(text) if text else None


def _parse(customer: Sequence[Any], terminal: Sequence[Any], spec: WindowSpec) -> Aggregates:
    """Aggregates from the record script's replies for a transaction's two sides."""
    gap = _optional(customer[0])
    agg = Aggregates(
        prev_gap_us=None if gap is None else int(gap),
        customer_risk_count=int(customer[1]),
        customer_risk_frauds=int(customer[2]),
    )
    n_windows = len(spec.windows_us)
    for w in range(n_windows):
        count, total = customer[3 + 2 * w : 5 + 2 * w]
        tcount, tfrauds = terminal[2 * w : 2 + 2 * w]
        agg.customer_count.append(int(count))
        agg.customer_sum.append(float(total))
        agg.terminal_count.append(int(tcount))
        agg.terminal_frauds.append(int(tfrauds))
    if spec.amount_window_us:
        count, total, median, recent = customer[3 + 2 * n_windows : 7 + 2 * n_windows]
        agg.prior_count, agg.prior_sum = int(count), float(total)
        agg.prior_median, agg.recent_max = _optional(median), _optional(recent)
    if spec.fraud_run:
        first, last = (_optional(value) for value in terminal[2 * n_windows : 2 * n_windows + 2])
        agg.terminal_first_fraud_us = None if first is None else int(first)
        agg.terminal_last_fraud_us = None if last is None else int(last)
    agg.recorded = int(customer[-1]) == 1
    return agg


class _HiredisPackedConnection(AsyncConnection):
    """asyncio TCP connection that packs commands with hiredis' C packer.

    redis-py's asyncio client packs in pure Python (~1 us per argument; a micro-batch's script
    call carries 8 per transaction); its sync client already uses hiredis when installed.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        """One RESP command as bytes (same output as the Python packer)."""
        if isinstance(args[0], str):  # a command name such as 'SCRIPT LOAD' is split
            args = (*args[0].encode().split(), *args[1:])
        return [hiredis.pack_command(args)]


class _Op(NamedTuple):  # a tuple: made twice per transaction on the hot path
    """One entity's share of a transaction or label: its keys, arguments and batch position."""

    customer: bool
    slot: int
    keys: tuple[str, ...]
    args: tuple[Any, ...]
    position: int


@dataclass(frozen=True, slots=True)
class _Call:
    """One script call: its operations (customer side first), KEYS and ARGV."""

    ops: list[_Op]
    keys: list[str]
    args: list[Any]


@dataclass(frozen=True, slots=True)
class _Script:
    lua: str
    sha: str

    @classmethod
    def of(cls, lua: str) -> _Script:
        return cls(lua, hashlib.sha1(lua.encode()).hexdigest())


_RECORD, _FORGET, _LABEL, _LOAD = (
    _Script.of(s) for s in (redis_lua.RECORD, redis_lua.FORGET, redis_lua.LABEL, redis_lua.LOAD)
)
_ROW = np.dtype([("ts", "<f8"), ("amount", "<f8"), ("id", "S20")])  # the rows string's record
# A load call holds Redis ~1 ms (256 rows; 4.6 ms for 1,024 on the shared machine): live calls
# slip in between; one call per round trip, since Redis runs a client's pipelined commands
# back to back. The bound holds per call, however many rows one entity has: a big entity's
# history is split into pieces (a terminal's 100,000 rows in one call held Redis 0.5 s).
_LOAD_ROWS_PER_CALL = 256


def _rows(ts: np.ndarray, amount: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows in the record script's layout (in the order given)."""
    rows = np.empty(len(ts), dtype=_ROW)
    rows["ts"], rows["amount"] = ts, amount
    if len(ids):  # rjust cannot size an empty array
        rows["id"] = np.char.rjust(ids.astype("S20"), 20)
    return rows


def _pieces(entity: np.ndarray) -> np.ndarray:
    """Each row's piece of its entity's rows (in the order given): ``_LOAD_ROWS_PER_CALL``
    rows a piece, so that one load call never carries more."""
    order = np.argsort(entity, kind="stable")
    starts = np.flatnonzero(np.r_[True, entity[order][1:] != entity[order][:-1]])
    rank = np.arange(len(entity)) - np.repeat(starts, np.diff(np.r_[starts, len(entity)]))
    pieces = np.empty(len(entity), dtype=np.int64)
    pieces[order] = rank // _LOAD_ROWS_PER_CALL
    return pieces


def _blobs(entity: np.ndarray, piece: np.ndarray, rows: np.ndarray) -> dict[tuple[int, int], bytes]:
    """Per (entity, piece), in that order, the concatenation of its rows (kept in order)."""
    if not len(rows):
        return {}
    order = np.lexsort((piece, entity))  # stable
    entity, piece, rows = entity[order], piece[order], rows[order]
    starts = np.flatnonzero(np.r_[True, (entity[1:] != entity[:-1]) | (piece[1:] != piece[:-1])])
    ends = [*starts[1:], len(rows)]
    return {
        (int(entity[a]), int(piece[a])): rows[a:b].tobytes()
        for a, b in zip(starts, ends, strict=True)
    }


_VERDICT_ADD, _VERDICT_READ = (_Script.of(s) for s in (redis_verdicts.ADD, redis_verdicts.READ))
# A re-warm lease held by ARGV[1]: extended to ARGV[2] ms, or deleted when that is 0.
_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


def _calls(ops: Sequence[_Op], header: Sequence[Any], by_slot: bool) -> list[_Call]:
    """Script calls for ``ops``: one per slot on a cluster, else one in all.

    Each entity's operations keep their batch order; an entity lives in one slot, and
    operations on different entities commute, so the grouping changes no result.
    """
    groups: dict[int, list[_Op]] = defaultdict(list)
    for op in ops:
        groups[op.slot if by_slot else 0].append(op)
    calls = []
    for group in groups.values():
        customers = [op for op in group if op.customer]
        ordered = customers + [op for op in group if not op.customer]
        keys = [key for op in ordered for key in op.keys]
        args = [*header, len(customers), *(arg for op in ordered for arg in op.args)]
        calls.append(_Call(ordered, keys, args))
    return calls


def _by_op(calls: Sequence[_Call], replies: Sequence[Any]) -> dict[tuple[bool, int], Any]:
    """Each operation's reply, by (customer side, batch position)."""
    return {
        (op.customer, op.position): reply
        for call, call_replies in zip(calls, replies, strict=True)
        for op, reply in zip(call.ops, call_replies, strict=True)
    }


# What a cluster says while a master fails over or is unreachable: the store is briefly
# unavailable, as a refused connection is (503 on the API, retried by the worker).
_FAILING_OVER = (
    ClusterError,
    TryAgainError,
    ReadOnlyError,
    SlotNotCoveredError,
    RedisClusterUnreachableError,
)


@contextmanager
def _unavailable_during_failover() -> Iterator[None]:
    try:
        yield
    except _FAILING_OVER as error:
        raise RedisConnectionError(
            f"Redis unavailable ({type(error).__name__}: {error})"
        ) from error


def _evalsha(script: _Script, call: _Call) -> tuple[Any, ...]:
    return ("EVALSHA", script.sha, len(call.keys), *call.keys, *call.args)


def _raise_first(replies: Sequence[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


@dataclass(frozen=True, slots=True)
class ServersSeen:
    """The run ids of the servers holding the state (each master's on a cluster) and when a
    process last saw them alive (aware UTC)."""

    run_ids: tuple[str, ...]
    seen_at: datetime


class RedisStateStore:
    """:class:`~vigil.features.state.StateStore` on Redis or Redis Cluster, shared by all."""

    def __init__(self, url: str, prefix: str = "vigil:features", ttl_slack_days: int = 1) -> None:
        self.prefix = prefix
        self._warm_key = f"{prefix}:warm"
        # in the marker's slot (their hash tag is the marker's whole name): lost with it
        self._seen_key = f"{prefix}:servers:{{{self._warm_key}}}"
        self._lease_key = f"{prefix}:rewarming:{{{self._warm_key}}}"
        self._ttl_slack_us = ttl_slack_days * US_PER_DAY
        self.cluster = url.startswith(CLUSTER_SCHEMES)
        self._url = url.replace("+cluster", "", 1)
        self._aclient: aioredis.Redis | aiocluster.RedisCluster
        if self.cluster:
            self._aclient = aiocluster.RedisCluster.from_url(
                self._url,
                decode_responses=True,
                connection_class=_HiredisPackedConnection,
                retry=AsyncRetry(_FAILOVER_BACKOFF, _FAILOVER_RETRIES),
            )
        else:
            self._aclient = aioredis.Redis.from_url(
                url, decode_responses=True, connection_class=_HiredisPackedConnection
            )

    @cached_property
    def _client(self) -> redis.Redis | redis.cluster.RedisCluster:
        """The synchronous client, made at first use (a cluster client connects at once)."""
        if self.cluster:
            retry = Retry(_FAILOVER_BACKOFF, _FAILOVER_RETRIES)
            return redis.cluster.RedisCluster.from_url(
                self._url, decode_responses=True, retry=retry
            )
        return redis.Redis.from_url(self._url, decode_responses=True)

    # -- keys and operations ------------------------------------------------------------

    def _stem(self, customer: bool, entity_id: int) -> str:
        return f"{self.prefix}:{{{'c' if customer else 't'}{entity_id}}}"

    def _customer_keys(self, customer_id: int) -> tuple[str, ...]:
        stem = self._stem(True, customer_id)
        return f"{stem}:tx", f"{stem}:rows", f"{stem}:frd"

    def _terminal_keys(self, terminal_id: int) -> tuple[str, ...]:
        stem = self._stem(False, terminal_id)
        return f"{stem}:tx", f"{stem}:frd"

    def _verdict_ops(self, items: Sequence[tuple[int, int, tuple[Any, ...]]]) -> list[_Op]:
        """Per (customer, terminal, args) item its customer and terminal verdict operations."""
        ops = []
        for i, (customer_id, terminal_id, args) in enumerate(items):
            for customer, entity_id in ((True, customer_id), (False, terminal_id)):
                stem = self._stem(customer, entity_id)
                keys = tuple(f"{stem}:{suffix}" for suffix in redis_verdicts.SUFFIXES)
                ops.append(self._op(customer, keys, args, i))
        return ops

    def _verdict_add_calls(self, verdicts: Sequence[Verdict], spec: WindowSpec) -> list[_Call]:
        horizon = spec.verdict_window_us + spec.delay_us
        items = [
            (
                v.customer_id,
                v.terminal_id,
                redis_verdicts.add_args(v, epoch_us(v.tx_datetime), epoch_us(v.reviewed_at)),
            )
            for v in verdicts
        ]
        header = [horizon, (horizon + self._ttl_slack_us) // 1000]
        return _calls(self._verdict_ops(items), header, self.cluster)

    def _verdict_read_calls(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[_Call]:
        items = [(tx.customer_id, tx.terminal_id, (tx.ts_us,)) for tx in txs]
        return _calls(self._verdict_ops(items), [spec.verdict_window_us], self.cluster)

    @staticmethod
    def _verdict_aggregates(
        n: int, calls: list[_Call], replies: list[Any]
    ) -> list[VerdictAggregates]:
        by_op = _by_op(calls, replies)
        return [redis_verdicts.aggregates(by_op[True, i], by_op[False, i]) for i in range(n)]

    def _op(self, customer: bool, keys: tuple[str, ...], args: tuple[Any, ...], i: int) -> _Op:
        return _Op(customer, key_slot(keys[0].encode()) if self.cluster else 0, keys, args, i)

    def _record_ops(self, txs: Sequence[Transaction]) -> list[_Op]:
        ops = []
        for i, tx in enumerate(txs):
            ts, tx_id = tx.ts_us, tx.transaction_id
            customer_args = (ts, tx_id, repr(float(tx.tx_amount)))
            ops.append(self._op(True, self._customer_keys(tx.customer_id), customer_args, i))
            ops.append(self._op(False, self._terminal_keys(tx.terminal_id), (ts, tx_id), i))
        return ops

    def _record_calls(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[_Call]:
        """The record script's calls: per slot on a cluster; on one Redis a single call built
        directly (every customer side in batch order, then every terminal side), the hot path
        of a single-node deployment."""
        header = self._record_header(spec)
        if self.cluster:
            return _calls(self._record_ops(txs), header, by_slot=True)
        keys: list[str] = []
        terminal_keys: list[str] = []
        args: list[Any] = [*header, len(txs)]
        terminal_args: list[Any] = []
        for tx in txs:
            ts, tx_id = tx.ts_us, tx.transaction_id
            keys += self._customer_keys(tx.customer_id)
            terminal_keys += self._terminal_keys(tx.terminal_id)
            args += (ts, tx_id, repr(float(tx.tx_amount)))
            terminal_args += (ts, tx_id)
        return [_Call([], keys + terminal_keys, args + terminal_args)]

    def _forget_ops(self, txs: Sequence[Transaction]) -> list[_Op]:
        ops = []
        for i, tx in enumerate(txs):
            tx_id = (tx.transaction_id,)
            ops.append(self._op(True, self._customer_keys(tx.customer_id), tx_id, i))
            ops.append(self._op(False, self._terminal_keys(tx.terminal_id), tx_id, i))
        return ops

    def _label_ops(self, label: Label) -> list[_Op]:
        args = (label.transaction_id, int(label.fraud))
        customer = self._customer_keys(label.customer_id)
        return [
            self._op(True, (customer[0], customer[2]), args, 0),
            self._op(False, self._terminal_keys(label.terminal_id), args, 0),
        ]

    def _ttl_ms(self, spec: WindowSpec) -> int:
        return (spec.horizon_us + self._ttl_slack_us) // 1000

    def _record_header(self, spec: WindowSpec) -> list[Any]:
        header: list[Any] = [spec.delay_us, self._ttl_ms(spec), spec.amount_window_us]
        return [*header, int(spec.fraud_run), len(spec.windows_us), *spec.windows_us]

    def _aggregates(
        self, txs: Sequence[Transaction], calls: list[_Call], replies: list[Any], spec: WindowSpec
    ) -> list[Aggregates]:
        if len(calls) == 1:  # one Redis: every customer side in batch order, then every terminal
            sides, n = replies[0], len(txs)
            return [_parse(sides[i], sides[n + i], spec) for i in range(n)]
        by_op = _by_op(calls, replies)
        return [_parse(by_op[True, i], by_op[False, i], spec) for i in range(len(txs))]

    # -- running script calls -------------------------------------------------------------

    def _run(self, script: _Script, calls: list[_Call]) -> list[Any]:
        """Replies of ``calls``; a cluster failing over raises ``redis.ConnectionError``."""
        with _unavailable_during_failover():
            return self._run_calls(script, calls)

    async def _arun(self, script: _Script, calls: list[_Call]) -> list[Any]:
        """Async :meth:`_run`."""
        with _unavailable_during_failover():
            return await self._arun_calls(script, calls)

    def _run_calls(self, script: _Script, calls: list[_Call]) -> list[Any]:
        """Replies of ``calls``: one EVALSHA on a single Redis, a pipeline per node on a cluster.

        A node that lacks the script (new, restarted or promoted) gets it loaded and the calls
        it refused run again: a refused call changed nothing.
        """
        commands = [_evalsha(script, call) for call in calls]
        if len(commands) == 1:
            try:
                return [self._client.execute_command(*commands[0])]
            except NoScriptError:
                self._client.script_load(script.lua)
                return [self._client.execute_command(*commands[0])]
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            if attempt:
                self._client.script_load(script.lua)
            pipe = self._client.pipeline(transaction=False)
            for i in pending:
                pipe.execute_command(*commands[i])
            for i, reply in zip(pending, pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
            pending = [i for i in pending if isinstance(replies[i], NoScriptError)]
            if not pending:
                break
        _raise_first(replies)
        return replies

    async def _arun_calls(self, script: _Script, calls: list[_Call]) -> list[Any]:
        commands = [_evalsha(script, call) for call in calls]
        if len(commands) == 1:
            try:
                return [await self._aclient.execute_command(*commands[0])]
            except NoScriptError:
                await self._aclient.script_load(script.lua)
                return [await self._aclient.execute_command(*commands[0])]
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            if attempt:
                await self._aclient.script_load(script.lua)
            pipe = self._aclient.pipeline(transaction=False)
            for i in pending:
                pipe.execute_command(*commands[i])
            for i, reply in zip(pending, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
            pending = [i for i in pending if isinstance(replies[i], NoScriptError)]
            if not pending:
                break
        _raise_first(replies)
        return replies

    # -- the StateStore interface ---------------------------------------------------------

    def record(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Append transactions in order (idempotent): one script call per batch (per slot)."""
        if not txs:
            return []
        calls = self._record_calls(txs, spec)
        return self._aggregates(txs, calls, self._run(_RECORD, calls), spec)

    async def arecord(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Async :meth:`record`."""
        if not txs:
            return []
        calls = self._record_calls(txs, spec)
        return self._aggregates(txs, calls, await self._arun(_RECORD, calls), spec)

    async def aforget(self, txs: Sequence[Transaction]) -> None:
        """Remove transactions this store recorded (their storage failed)."""
        if txs:
            await self._arun(_FORGET, _calls(self._forget_ops(txs), [], self.cluster))

    def add_label(self, label: Label) -> None:
        """Attach a fraud label to the transaction if its histories still hold it."""
        self._run(_LABEL, _calls(self._label_ops(label), [], self.cluster))

    def add_labels(self, labels: Sequence[Label]) -> None:
        """:meth:`add_label` for many labels: one script call (per slot) for all of them."""
        if labels:
            ops = [op for label in labels for op in self._label_ops(label)]
            self._run(_LABEL, _calls(ops, [], self.cluster))

    def load(self, txs: Sequence[Transaction], labels: Sequence[Label], spec: WindowSpec) -> None:
        """A warm-up's bulk load: the same state as :meth:`record` of ``txs`` in time order
        then :meth:`add_labels`, merged into what the store holds, without computing any
        window: per entity and piece of at most ``_LOAD_ROWS_PER_CALL`` transactions (in time
        order) one script operation with their final labels, one call per round trip. On a
        cluster: recorded one batch at a time instead."""
        if self.cluster:
            for start in range(0, len(txs), 512):
                self.record(txs[start : start + 512], spec)
            for start in range(0, len(labels), 512):
                self.add_labels(labels[start : start + 512])
            return
        if not txs:
            return
        txs = list({tx.transaction_id: tx for tx in reversed(txs)}.values())[::-1]  # NX: first
        ts = np.array([tx.ts_us for tx in txs], dtype=np.float64)
        ids = np.array([tx.transaction_id for tx in txs], dtype=np.int64)
        amounts = np.array([tx.tx_amount for tx in txs], dtype=np.float64)
        owners = np.array([(tx.customer_id, tx.terminal_id) for tx in txs], dtype=np.int64)
        order = np.lexsort((np.char.rjust(ids.astype("S20"), 20), ts))  # (time, padded id)
        rows = _rows(ts[order], amounts[order], ids[order])
        owners = owners[order]
        at = {i: n for n, i in enumerate(ids[order].tolist())}  # a transaction's row
        final = {label.transaction_id: label for label in labels}  # the last label counts
        known = [label for i, label in final.items() if i in at]
        known_at = np.array([at[label.transaction_id] for label in known], dtype=np.int64)
        label_rows = _rows(
            np.zeros(len(known)),
            np.zeros(len(known)),
            np.array([label.transaction_id for label in known], dtype=np.int64),
        )
        label_owners = np.array(
            [(label.customer_id, label.terminal_id) for label in known], dtype=np.int64
        ).reshape(-1, 2)
        fraud = np.array([label.fraud for label in known], dtype=bool)
        ops: list[tuple[bool, int, bytes, bytes, bytes]] = []
        for side, customer in ((0, True), (1, False)):
            pieces = _pieces(owners[:, side])  # a label goes with its transaction's piece
            label_pieces = pieces[known_at]
            frauds = _blobs(label_owners[fraud, side], label_pieces[fraud], label_rows[fraud])
            genuine = _blobs(label_owners[~fraud, side], label_pieces[~fraud], label_rows[~fraud])
            for (entity, piece), blob in _blobs(owners[:, side], pieces, rows).items():
                key = (entity, piece)
                ops.append((customer, entity, blob, frauds.get(key, b""), genuine.get(key, b"")))
        self._load_ops(ops, spec)

    def _load_ops(self, ops: list[tuple[bool, int, bytes, bytes, bytes]], spec: WindowSpec) -> None:
        """Run the load script over ``ops`` (in order; each at most ``_LOAD_ROWS_PER_CALL``
        rows), one call per round trip, each carrying at most that many rows."""
        ttl = self._ttl_ms(spec)
        calls: list[tuple[Any, ...]] = []
        batch: list[tuple[bool, int, bytes, bytes, bytes]] = []
        size = 0

        def flush() -> None:
            customers = [op for op in batch if op[0]]
            terminals = [op for op in batch if not op[0]]
            keys: list[str] = []
            args: list[Any] = [ttl, len(customers)]
            for customer, entity, *blobs in customers + terminals:
                keys += self._customer_keys(entity) if customer else self._terminal_keys(entity)
                args += blobs
            calls.append(("EVALSHA", _LOAD.sha, len(keys), *keys, *args))

        for op in ops:
            rows = len(op[2]) // _ROW.itemsize
            if batch and size + rows > _LOAD_ROWS_PER_CALL:
                flush()
                batch, size = [], 0
            batch.append(op)
            size += rows
        if batch:
            flush()
        self._client.script_load(_LOAD.lua)
        for call in calls:
            self._client.execute_command(*call)

    async def aadd_label(self, label: Label) -> None:
        """Async :meth:`add_label`."""
        await self._arun(_LABEL, _calls(self._label_ops(label), [], self.cluster))

    def add_verdicts(self, verdicts: Sequence[Verdict], spec: WindowSpec) -> None:
        """Hold verdicts (latest review per transaction) for the verdict features."""
        if verdicts:
            self._run(_VERDICT_ADD, self._verdict_add_calls(verdicts, spec))

    async def aadd_verdicts(self, verdicts: Sequence[Verdict], spec: WindowSpec) -> None:
        """Async :meth:`add_verdicts`."""
        if verdicts:
            await self._arun(_VERDICT_ADD, self._verdict_add_calls(verdicts, spec))

    def verdict_aggregates(
        self, txs: Sequence[Transaction], spec: WindowSpec
    ) -> list[VerdictAggregates]:
        """What each transaction sees of the verdicts reviewed before it (read only)."""
        if not txs:
            return []
        calls = self._verdict_read_calls(txs, spec)
        return self._verdict_aggregates(len(txs), calls, self._run(_VERDICT_READ, calls))

    async def averdict_aggregates(
        self, txs: Sequence[Transaction], spec: WindowSpec
    ) -> list[VerdictAggregates]:
        """Async :meth:`verdict_aggregates`."""
        if not txs:
            return []
        calls = self._verdict_read_calls(txs, spec)
        replies = await self._arun(_VERDICT_READ, calls)
        return self._verdict_aggregates(len(txs), calls, replies)

    def ping(self) -> bool:
        """PING Redis; raises ``redis.ConnectionError`` (or a timeout) when it is unreachable."""
        with _unavailable_during_failover():
            return bool(self._client.ping())

    def mark_warm(self) -> None:
        """Set the warm marker (no TTL): lost with the data when Redis restarts without it."""
        self._client.set(self._warm_key, datetime.now(UTC).isoformat())

    async def awarm(self) -> bool:
        """Whether the warm marker is still there (a restart that lost the state loses it)."""
        with _unavailable_during_failover():
            return bool(await self._aclient.exists(self._warm_key))

    async def arun_ids(self) -> tuple[str, ...]:
        """The run ids of the servers holding the state, sorted: one for a single Redis, each
        master's on a cluster. A restarted server or a promoted replica has a new one."""
        with _unavailable_during_failover():
            if isinstance(self._aclient, aiocluster.RedisCluster):
                await self._aclient.initialize()  # the topology (again after a failed call)
                infos = [
                    await self._aclient.execute_command("INFO", "server", target_nodes=node)
                    for node in self._aclient.get_primaries()
                ]
            else:
                infos = [await self._aclient.info("server")]
        return tuple(sorted(str(info["run_id"]) for info in infos))

    async def alast_seen(self) -> ServersSeen | None:
        """What :meth:`amark_seen` recorded last (``None``: never, or lost with the data)."""
        with _unavailable_during_failover():
            value = await self._aclient.get(self._seen_key)
        if value is None:
            return None
        fields = json.loads(value)
        return ServersSeen(tuple(fields["run_ids"]), datetime.fromisoformat(fields["seen_at"]))

    async def amark_seen(self, seen: ServersSeen) -> None:
        """Record that ``seen.run_ids`` were alive at ``seen.seen_at`` (no TTL)."""
        value = json.dumps({"run_ids": list(seen.run_ids), "seen_at": seen.seen_at.isoformat()})
        with _unavailable_during_failover():
            await self._aclient.set(self._seen_key, value)

    async def aclaim_rewarm(self, token: str, lease_ms: int) -> bool:
        """Take the re-warm lease for ``lease_ms`` unless another process holds it: one
        process re-warms after a restart, the others wait for :meth:`alast_seen` to move."""
        with _unavailable_during_failover():
            return bool(await self._aclient.set(self._lease_key, token, nx=True, px=lease_ms))

    async def aextend_rewarm(self, token: str, lease_ms: int) -> bool:
        """Extend the re-warm lease ``token`` holds to ``lease_ms`` (False: not held)."""
        with _unavailable_during_failover():
            return bool(await self._aclient.eval(_LEASE, 1, self._lease_key, token, lease_ms))

    async def arelease_rewarm(self, token: str) -> None:
        """Give the re-warm lease back (if ``token`` still holds it)."""
        with _unavailable_during_failover():
            await self._aclient.eval(_LEASE, 1, self._lease_key, token, 0)

    async def aping(self) -> bool:
        """Async :meth:`ping`."""
        with _unavailable_during_failover():
            return bool(await self._aclient.ping())

    def close(self) -> None:
        """Close the synchronous connection pool (if one was made)."""
        if "_client" in self.__dict__:  # made lazily: never connect just to close
            self._client.close()

    async def aclose(self) -> None:
        """Close the asynchronous connection pool (call from the event loop that used it)."""
        await self._aclient.aclose()
