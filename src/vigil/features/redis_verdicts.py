"""The verdict state on Redis: two scripts beside the record script, one entity per operation.

Per customer and per terminal (keys inside the entity's hash tag, ADR 0013): a sorted set
``<entity>:vrd`` of the verdicts' transaction ids scored by transaction time and a hash
``<entity>:vrv`` from id to ``reviewed fraud compromised`` (review time in microseconds). An
operation is one entity's share of a verdict (or of a transaction's read), so the calls group
by slot on Redis Cluster like the record script's. The add script keeps a transaction's
latest review, drops verdicts older than the window plus the delay before the review and
refreshes the TTLs; the read script only reads. Same rules as the in-process
:class:`~vigil.features.verdicts.VerdictState` (ADR 0017).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.features.verdicts import Verdict, VerdictAggregates

SUFFIXES = ("vrd", "vrv")

ADD = """
-- ARGV: horizon, ttl_ms, n customer operations (unused: both sides are alike), then per
-- operation id, transaction time, reviewed, fraud (0/1), compromised (0/1).
-- KEYS: per operation the entity's verdict zset and verdict hash.
local horizon, ttl = tonumber(ARGV[1]), ARGV[2]
for p = 0, #KEYS / 2 - 1 do
  local zkey, hkey, a = KEYS[2 * p + 1], KEYS[2 * p + 2], 4 + 5 * p
  local id, ts, reviewed = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local held = redis.call('HGET', hkey, id)
  if not held or tonumber(string.match(held, '^(%S+)')) <= reviewed then
    redis.call('ZADD', zkey, ts, id)
    redis.call('HSET', hkey, id, ARGV[a + 2] .. ' ' .. ARGV[a + 3] .. ' ' .. ARGV[a + 4])
  end
  local cutoff = string.format('%.17g', reviewed - horizon)
  local old = redis.call('ZRANGEBYSCORE', zkey, '-inf', cutoff)
  if #old > 0 then
    redis.call('HDEL', hkey, unpack(old))
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', cutoff)
  end
  redis.call('PEXPIRE', zkey, ttl)
  redis.call('PEXPIRE', hkey, ttl)
end
return 1
"""

READ = """
-- ARGV: window, n customer operations (unused), then per operation the transaction's time.
-- KEYS: per operation the entity's verdict zset and hash. Per operation: reviewed, frauds,
-- frauds marked compromised, the earliest of those ('' when none), over the verdicts on
-- transactions in (ts - window, ts] reviewed strictly before ts.
local window = tonumber(ARGV[1])
local out = {}
for p = 0, #KEYS / 2 - 1 do
  local zkey, hkey, ts = KEYS[2 * p + 1], KEYS[2 * p + 2], tonumber(ARGV[3 + p])
  local ids = redis.call('ZRANGEBYSCORE', zkey, '(' .. string.format('%.17g', ts - window),
    string.format('%.17g', ts), 'WITHSCORES')
  local reviewed, frauds, compromised, first = 0, 0, 0, nil
  for i = 1, #ids, 2 do
    local held = redis.call('HGET', hkey, ids[i])
    if held then
      local at, fraud, comp = string.match(held, '^(%S+) (%S+) (%S+)$')
      if tonumber(at) < ts then
        reviewed = reviewed + 1
        if fraud == '1' then
          frauds = frauds + 1
          if comp == '1' then
            compromised = compromised + 1
            local score = tonumber(ids[i + 1])
            if first == nil or score < first then first = score end
          end
        end
      end
    end
  end
  out[#out + 1] = {reviewed, frauds, compromised, first and string.format('%.17g', first) or ''}
end
return out
"""


def add_args(verdict: Verdict, ts_us: int, reviewed_us: int) -> tuple[Any, ...]:
    """One operation's ARGV of the add script (the same for the customer and the terminal)."""
    compromised = int(bool(verdict.fraud and verdict.terminal_compromised))
    return (verdict.transaction_id, ts_us, reviewed_us, int(bool(verdict.fraud)), compromised)


def aggregates(customer: Sequence[Any], terminal: Sequence[Any]) -> VerdictAggregates:
    """One transaction's aggregates from the read script's customer and terminal replies."""
    first = str(terminal[3])
    return VerdictAggregates(
        terminal_reviewed=int(terminal[0]),
        terminal_frauds=int(terminal[1]),
        terminal_compromised=int(terminal[2]),
        terminal_first_compromised_us=int(float(first)) if first else None,
        customer_reviewed=int(customer[0]),
        customer_frauds=int(customer[1]),
    )
