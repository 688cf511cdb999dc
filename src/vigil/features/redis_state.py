"""The shared online state store on Redis: one Lua script call (EVALSHA) per micro-batch.

Per customer: a sorted set of transaction ids scored by event time (microseconds, exact in a
double below 2**53), a string of fixed-size rows (time, amount, id) in time order and a sorted
set of the known frauds (same ids and scores); per terminal: the transactions and the known
frauds as sorted sets. The record script adds the transaction (NX: idempotent), trims entries
older than the longest window plus the label delay, refreshes TTLs and returns the raw window
aggregates, so every API replica and worker sees the same state. Counts over the delayed
windows are ``ZCOUNT``s; the customer's own windows (amount sums, the previous transaction,
the amount baseline) are one walk over the rows string, which costs a third of reading the
window back as sorted-set and hash replies (ADR 0010). A store written by an earlier layout
(amounts in a hash ``...:amt`` before ADR 0010, labels in hashes ``...:lab`` before ADR 0009)
is caught up by replaying the last 37 days of transactions and labels (``vigil warm-state``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection as AsyncConnection

from vigil.features.state import US_PER_DAY, Aggregates, Label, Transaction, WindowSpec

logger = logging.getLogger(__name__)

# Lua numbers are doubles: times and sums leave as '%.17g' strings to stay exact.
_RECORD_LUA = """
-- A whole micro-batch in one call, in order. KEYS: per transaction its customer zset, customer
-- rows, customer frauds zset, terminal zset, terminal frauds zset. ARGV: delay, ttl_ms, amount
-- window (0: no amount baseline), fraud run (0/1), n windows, window_1 .. window_n
-- (microseconds), then per transaction ts, id, amount.
--
-- The customer's rows are one string of fixed-size records in (time, id) order: event time and
-- amount as little-endian doubles, then the id right-aligned in 20 characters (so that string
-- order is numeric order). A window is a walk over that string: no reply of one string per
-- row, no hash lookups.
local delay, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local amount_window, fraud_run = tonumber(ARGV[3]), ARGV[4] == '1'
local n_windows = tonumber(ARGV[5])
local windows, longest = {}, 0
for i = 1, n_windows do
  windows[i] = tonumber(ARGV[5 + i])
  longest = math.max(longest, windows[i])
end
local ROW, ID_AT = 36, 16  -- record size; offset of the id inside a record
local unpack_row = struct.unpack

local function fmt(x) return string.format('%.17g', x) end

-- The rows string with the (new) transaction's record in order and every record at or
-- before cutoff dropped; written back only when it changed.
local function updated_rows(key, row, ts, pid, cutoff)
  local rows = redis.call('GET', key) or ''
  local size, first = #rows, 1
  while first <= size and unpack_row('<d', rows, first) <= cutoff do first = first + ROW end
  if row == nil then
    if first == 1 then return rows end
    rows = string.sub(rows, first)
    redis.call('SET', key, rows)
    return rows
  end
  local at = size + 1  -- after every record ordered before (ts, id)
  while at > first do
    local score = unpack_row('<d', rows, at - ROW)
    if score < ts or (score == ts and string.sub(rows, at - ROW + ID_AT, at - 1) < pid) then
      break
    end
    at = at - ROW
  end
  if first == 1 and at == size + 1 then
    redis.call('APPEND', key, row)
    return rows .. row
  end
  rows = string.sub(rows, first, at - 1) .. row .. string.sub(rows, at)
  redis.call('SET', key, rows)
  return rows
end

-- What no window can reach any more is forgotten: entries at or before the eviction time
-- minus the horizon. The eviction time is this event's time, but never later than the
-- entity's newest earlier event: one event with an outlying (future) time cannot evict the
-- history of the events around it, and a late event evicts nothing newer.
local function cutoff(key, ts)
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  if newest then ts = math.min(ts, tonumber(newest)) end
  return ts - longest - delay
end

local function record(K, ts, id, amount)
  local pid = string.format('%20s', id)
  local customer_cut, terminal_cut = cutoff(K[1], ts), cutoff(K[4], ts)
  local row = nil
  local added = redis.call('ZADD', K[1], 'NX', ts, id) == 1
  if added then
    row = struct.pack('<dd', ts, tonumber(amount)) .. pid
  end
  redis.call('ZADD', K[4], 'NX', ts, id)

  local rows = updated_rows(K[2], row, ts, pid, customer_cut)
  for k = 1, 5 do
    local cut = k <= 3 and customer_cut or terminal_cut
    if k ~= 2 then redis.call('ZREMRANGEBYSCORE', K[k], '-inf', fmt(cut)) end
    redis.call('PEXPIRE', K[k], ttl)
  end

  -- customer windows (ts - w, ts], ties after this id excluded, summed oldest first;
  -- the previous transaction; the amounts of earlier instants for the baseline
  local start = #rows + 1
  while start > 1 and unpack_row('<d', rows, start - ROW) > ts - longest do
    start = start - ROW
  end
  local counts, totals = {}, {}
  for w = 1, n_windows do counts[w], totals[w] = 0, 0 end
  local prev_score, prior, prior_total, recent = nil, {}, 0, nil
  for at = start, #rows, ROW do
    local score, amount = unpack_row('<dd', rows, at)
    local kept, own = score < ts, false
    if score == ts then
      local other = string.sub(rows, at + ID_AT, at + ROW - 1)
      kept, own = other <= pid, other == pid
    end
    if kept then
      if not own then prev_score = score end
      for w = 1, n_windows do
        if score > ts - windows[w] then
          counts[w], totals[w] = counts[w] + 1, totals[w] + amount
        end
      end
      if score < ts then
        prior[#prior + 1], prior_total = amount, prior_total + amount
        if score > ts - amount_window and (recent == nil or amount > recent) then
          recent = amount
        end
      end
    end
  end

  local result = {}
  result[1] = prev_score and fmt(ts - prev_score) or ''
  -- customer risk over (ts - delay - longest, ts - delay]
  local low, high = '(' .. fmt(ts - delay - longest), fmt(ts - delay)
  result[2] = redis.call('ZCOUNT', K[1], low, high)
  result[3] = redis.call('ZCOUNT', K[3], low, high)
  for w = 1, n_windows do
    local tlow = '(' .. fmt(ts - delay - windows[w])
    result[#result + 1] = counts[w]
    result[#result + 1] = fmt(totals[w])
    result[#result + 1] = redis.call('ZCOUNT', K[4], tlow, high)
    result[#result + 1] = redis.call('ZCOUNT', K[5], tlow, high)
  end

  if amount_window > 0 then  -- prior count, sum, median and recent max
    local n, median = #prior, ''
    if n > 0 then
      table.sort(prior)
      local mid = math.floor((n + 1) / 2)
      median = n % 2 == 1 and fmt(prior[mid]) or fmt((prior[mid] + prior[mid + 1]) / 2)
    end
    for _, value in ipairs({n, fmt(prior_total), median, recent and fmt(recent) or ''}) do
      result[#result + 1] = value
    end
  end
  if fraud_run then  -- earliest and latest known fraud in the delayed longest window
    local frauds = redis.call('ZRANGEBYSCORE', K[5], low, high, 'WITHSCORES')
    result[#result + 1] = #frauds > 0 and fmt(tonumber(frauds[2])) or ''
    result[#result + 1] = #frauds > 0 and fmt(tonumber(frauds[#frauds])) or ''
  end
  result[#result + 1] = added and 1 or 0  -- recorded by this call (not a repeat)
  return result
end

local out, first = {}, 6 + n_windows
for t = 0, #KEYS / 5 - 1 do
  local k, a = 5 * t, first + 3 * t
  local keys = {KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]}
  out[#out + 1] = record(keys, tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2])
end
return out
"""

_FORGET_LUA = """
-- Undo the recording of transactions whose storage failed. KEYS: per transaction the five
-- keys of the record script; ARGV: per transaction its id.
local ROW, ID_AT = 36, 16
for t = 0, #KEYS / 5 - 1 do
  local k, id = 5 * t, ARGV[t + 1]
  local pid = string.format('%20s', id)
  for _, key in ipairs({KEYS[k + 1], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]}) do
    redis.call('ZREM', key, id)
  end
  local rows = redis.call('GET', KEYS[k + 2]) or ''
  for at = 1, #rows, ROW do
    if string.sub(rows, at + ID_AT, at + ROW - 1) == pid then
      redis.call('SET', KEYS[k + 2], string.sub(rows, 1, at - 1) .. string.sub(rows, at + ROW))
      break
    end
  end
end
return 1
"""

_LABEL_LUA = """
-- KEYS: customer zset, customer frauds, terminal zset, terminal frauds; ARGV: id, fraud (0/1).
-- A fraud joins the frauds set with its transaction's time and lives as long as that
-- transaction's set (the record script refreshes both); a genuine label removes it.
for k = 1, 3, 2 do
  local ts = redis.call('ZSCORE', KEYS[k], ARGV[1])
  if ts then
    if ARGV[2] == '1' then
      redis.call('ZADD', KEYS[k + 1], ts, ARGV[1])
      local ttl = redis.call('PTTL', KEYS[k])
      if ttl > 0 then redis.call('PEXPIRE', KEYS[k + 1], ttl) end
    else
      redis.call('ZREM', KEYS[k + 1], ARGV[1])
    end
  end
end
return 1
"""


def _optional(value: Any) -> float | None:
    """A number sent as a string, or ``None`` for the empty string."""
    text = str(value)
    return float(text) if text else None


def _parse(reply: Sequence[Any], spec: WindowSpec) -> Aggregates:
    """Aggregates from the record script's flat reply."""
    gap = _optional(reply[0])
    agg = Aggregates(
        prev_gap_us=None if gap is None else int(gap),
        customer_risk_count=int(reply[1]),
        customer_risk_frauds=int(reply[2]),
    )
    n_windows = len(spec.windows_us)
    for w in range(n_windows):
        count, total, tcount, tfrauds = reply[3 + 4 * w : 7 + 4 * w]
        agg.customer_count.append(int(count))
        agg.customer_sum.append(float(total))
        agg.terminal_count.append(int(tcount))
        agg.terminal_frauds.append(int(tfrauds))
    rest = list(reply[3 + 4 * n_windows :])
    if spec.amount_window_us:
        count, total, median, recent = rest[:4]
        agg.prior_count, agg.prior_sum = int(count), float(total)
        agg.prior_median, agg.recent_max = _optional(median), _optional(recent)
        rest = rest[4:]
    if spec.fraud_run:
        first, last = (_optional(value) for value in rest[:2])
        agg.terminal_first_fraud_us = None if first is None else int(first)
        agg.terminal_last_fraud_us = None if last is None else int(last)
    agg.recorded = int(reply[-1]) == 1
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


class RedisStateStore:
    """:class:`~vigil.features.state.StateStore` on Redis, shared by every replica."""

    def __init__(self, url: str, prefix: str = "vigil:features", ttl_slack_days: int = 1) -> None:
        self.prefix = prefix
        self._warm_key = f"{prefix}:warm"
        self._ttl_slack_us = ttl_slack_days * US_PER_DAY
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self._aclient = aioredis.Redis.from_url(
            url, decode_responses=True, connection_class=_HiredisPackedConnection
        )
        self._record = self._client.register_script(_RECORD_LUA)
        self._label = self._client.register_script(_LABEL_LUA)
        self._arecord = self._aclient.register_script(_RECORD_LUA)
        self._alabel = self._aclient.register_script(_LABEL_LUA)
        self._aforget = self._aclient.register_script(_FORGET_LUA)

    def _keys(self, customer_id: int, terminal_id: int) -> list[str]:
        customer, terminal = f"{self.prefix}:c:{customer_id}", f"{self.prefix}:t:{terminal_id}"
        suffixes = [(customer, "tx"), (customer, "rows"), (customer, "frd")]
        suffixes += [(terminal, "tx"), (terminal, "frd")]
        return [f"{entity}:{suffix}" for entity, suffix in suffixes]

    def _ttl_ms(self, spec: WindowSpec) -> int:
        return (spec.horizon_us + self._ttl_slack_us) // 1000

    def _record_call(
        self, txs: Sequence[Transaction], spec: WindowSpec
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of one record-script call for the whole batch."""
        keys: list[str] = []
        args: list[Any] = [spec.delay_us, self._ttl_ms(spec), spec.amount_window_us]
        args += [int(spec.fraud_run), len(spec.windows_us), *spec.windows_us]
        for tx in txs:
            keys += self._keys(tx.customer_id, tx.terminal_id)
            args += [tx.ts_us, tx.transaction_id, repr(float(tx.tx_amount))]
        return keys, args

    def _label_call(self, label: Label) -> tuple[list[str], list[Any]]:
        keys = self._keys(label.customer_id, label.terminal_id)
        return [keys[0], keys[2], keys[3], keys[4]], [label.transaction_id, int(label.fraud)]

    def record(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Append transactions in order (idempotent): one script call (EVALSHA) per batch."""
        if not txs:
            return []
        keys, args = self._record_call(txs, spec)
        replies = self._record(keys=keys, args=args)
        return [_parse(reply, spec) for reply in replies]

    async def arecord(self, txs: Sequence[Transaction], spec: WindowSpec) -> list[Aggregates]:
        """Async :meth:`record`."""
        if not txs:
            return []
        keys, args = self._record_call(txs, spec)
        replies = await self._arecord(keys=keys, args=args)
        return [_parse(reply, spec) for reply in replies]

    async def aforget(self, txs: Sequence[Transaction]) -> None:
        """Remove transactions this store recorded (their storage failed); one script call."""
        if txs:
            keys = [key for tx in txs for key in self._keys(tx.customer_id, tx.terminal_id)]
            await self._aforget(keys=keys, args=[tx.transaction_id for tx in txs])

    def add_label(self, label: Label) -> None:
        """Attach a fraud label to the transaction if its histories still hold it."""
        keys, args = self._label_call(label)
        self._label(keys=keys, args=args)

    async def aadd_label(self, label: Label) -> None:
        """Async :meth:`add_label`."""
        keys, args = self._label_call(label)
        await self._alabel(keys=keys, args=args)

    def ping(self) -> bool:
        """PING Redis; raises ``redis.ConnectionError`` (or a timeout) when it is unreachable."""
        return bool(self._client.ping())

    def mark_warm(self) -> None:
        """Set the warm marker (no TTL): lost with the data when Redis restarts without it."""
        self._client.set(self._warm_key, datetime.now(UTC).isoformat())

    async def awarm(self) -> bool:
        """Whether the warm marker is still there (a restart that lost the state loses it)."""
        return bool(await self._aclient.exists(self._warm_key))

    async def aping(self) -> bool:
        """Async :meth:`ping`."""
        return bool(await self._aclient.ping())

    def close(self) -> None:
        """Close the synchronous connection pool."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the asynchronous connection pool (call from the event loop that used it)."""
        await self._aclient.aclose()
