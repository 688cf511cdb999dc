"""The Lua scripts of the Redis state store (:mod:`vigil.features.redis_state`).

Every script takes a list of *operations*, each on one entity: the customer side of a
transaction (its transactions set, rows string and frauds set) or the terminal side (its
transactions and frauds sets). An entity's keys share one hash tag, so on Redis Cluster a
call that holds the operations of one slot never spans two slots; on a single Redis one call
holds the whole micro-batch. Operations on different entities touch disjoint keys and
commute, so any grouping gives the same state and the same replies as one call in batch
order, as long as each entity's operations keep that order (ADR 0013).
"""

from __future__ import annotations

# Lua numbers are doubles: times and sums leave as '%.17g' strings to stay exact.
RECORD = """
-- ARGV: delay, ttl_ms, amount window (0: no amount baseline), fraud run (0/1), n windows,
-- window_1 .. window_n (microseconds), n customer operations, then per customer operation
-- ts, id, amount, then per terminal operation ts, id. KEYS: per customer operation its
-- transactions zset, rows string and frauds zset; then per terminal operation its
-- transactions zset and frauds zset. Reply: one list per operation, customers first.
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
local n_customers = tonumber(ARGV[6 + n_windows])
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

local function trim_and_expire(keys, cut)
  for _, key in ipairs(keys) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(cut))
    redis.call('PEXPIRE', key, ttl)
  end
end

-- Customer side: record, then the customer windows (ts - w, ts] (ties after this id
-- excluded, summed oldest first), the previous transaction, the delayed customer risk and
-- the amounts of earlier instants for the baseline. Reply: gap, risk count, risk frauds,
-- per window count and sum, [prior count, sum, median, recent max], recorded (1/0).
local function customer(K, ts, id, amount)
  local pid = string.format('%20s', id)
  local cut = cutoff(K[1], ts)
  local row = nil
  local added = redis.call('ZADD', K[1], 'NX', ts, id) == 1
  if added then
    row = struct.pack('<dd', ts, tonumber(amount)) .. pid
  end
  local rows = updated_rows(K[2], row, ts, pid, cut)
  trim_and_expire({K[1], K[3]}, cut)
  redis.call('PEXPIRE', K[2], ttl)

  local start = #rows + 1
  while start > 1 and unpack_row('<d', rows, start - ROW) > ts - longest do
    start = start - ROW
  end
  local counts, totals = {}, {}
  for w = 1, n_windows do counts[w], totals[w] = 0, 0 end
  local prev_score, prior, prior_total, recent = nil, {}, 0, nil
  for at = start, #rows, ROW do
    local score, value = unpack_row('<dd', rows, at)
    local kept, own = score < ts, false
    if score == ts then
      local other = string.sub(rows, at + ID_AT, at + ROW - 1)
      kept, own = other <= pid, other == pid
    end
    if kept then
      if not own then prev_score = score end
      for w = 1, n_windows do
        if score > ts - windows[w] then
          counts[w], totals[w] = counts[w] + 1, totals[w] + value
        end
      end
      if score < ts then
        prior[#prior + 1], prior_total = value, prior_total + value
        if score > ts - amount_window and (recent == nil or value > recent) then
          recent = value
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
    result[#result + 1] = counts[w]
    result[#result + 1] = fmt(totals[w])
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
  result[#result + 1] = added and 1 or 0  -- recorded by this call (not a repeat)
  return result
end

-- Terminal side: record, then per window the delayed count and known frauds, and the
-- earliest and latest known fraud of the delayed longest window when the group is on.
local function terminal(K, ts, id)
  local cut = cutoff(K[1], ts)
  redis.call('ZADD', K[1], 'NX', ts, id)
  trim_and_expire(K, cut)
  local result, high = {}, fmt(ts - delay)
  for w = 1, n_windows do
    local tlow = '(' .. fmt(ts - delay - windows[w])
    result[#result + 1] = redis.call('ZCOUNT', K[1], tlow, high)
    result[#result + 1] = redis.call('ZCOUNT', K[2], tlow, high)
  end
  if fraud_run then
    local low = '(' .. fmt(ts - delay - longest)
    local frauds = redis.call('ZRANGEBYSCORE', K[2], low, high, 'WITHSCORES')
    result[#result + 1] = #frauds > 0 and fmt(tonumber(frauds[2])) or ''
    result[#result + 1] = #frauds > 0 and fmt(tonumber(frauds[#frauds])) or ''
  end
  return result
end

local out, a = {}, 7 + n_windows
for c = 0, n_customers - 1 do
  local k = 3 * c
  out[#out + 1] = customer({KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]},
                           tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2])
  a = a + 3
end
for k = 3 * n_customers, #KEYS - 1, 2 do
  out[#out + 1] = terminal({KEYS[k + 1], KEYS[k + 2]}, tonumber(ARGV[a]), ARGV[a + 1])
  a = a + 2
end
return out
"""

FORGET = """
-- Undo the recording of transactions whose storage failed. ARGV: n customer operations, then
-- per operation the transaction id. KEYS: per customer operation its transactions zset, rows
-- string and frauds zset; then per terminal operation its transactions and frauds zsets.
local ROW, ID_AT = 36, 16
local n_customers = tonumber(ARGV[1])
for c = 0, n_customers - 1 do
  local k, id = 3 * c, ARGV[c + 2]
  local pid = string.format('%20s', id)
  redis.call('ZREM', KEYS[k + 1], id)
  redis.call('ZREM', KEYS[k + 3], id)
  local rows = redis.call('GET', KEYS[k + 2]) or ''
  for at = 1, #rows, ROW do
    if string.sub(rows, at + ID_AT, at + ROW - 1) == pid then
      redis.call('SET', KEYS[k + 2], string.sub(rows, 1, at - 1) .. string.sub(rows, at + ROW))
      break
    end
  end
end
local a = n_customers + 2
for k = 3 * n_customers, #KEYS - 1, 2 do
  redis.call('ZREM', KEYS[k + 1], ARGV[a])
  redis.call('ZREM', KEYS[k + 2], ARGV[a])
  a = a + 1
end
return 1
"""

LABEL = """
-- ARGV: n customer operations (unused: both sides are alike), then per operation id and
-- fraud (0/1). KEYS: per operation the entity's transactions zset and frauds zset.
-- A fraud joins the frauds set with its transaction's time and lives as long as that
-- transaction's set (the record script refreshes both); a genuine label removes it.
for p = 0, #KEYS / 2 - 1 do
  local zset, frauds = KEYS[2 * p + 1], KEYS[2 * p + 2]
  local id, fraud = ARGV[2 * p + 2], ARGV[2 * p + 3]
  local ts = redis.call('ZSCORE', zset, id)
  if ts then
    if fraud == '1' then
      redis.call('ZADD', frauds, ts, id)
      local ttl = redis.call('PTTL', zset)
      if ttl > 0 then redis.call('PEXPIRE', frauds, ttl) end
    else
      redis.call('ZREM', frauds, id)
    end
  end
end
return 1
"""

LOAD = """
-- A warm-up's bulk load (``vigil warm-state``): many transactions of one entity at once,
-- merged into what the entity already holds (live traffic recorded since a restart), and
-- the entity's final labels. The same state as recording them one by one in time order then
-- applying the labels; no windows computed, nothing returned.
-- ARGV: ttl_ms, n customer operations, then per operation three blobs of 36-byte rows
-- (time and amount as little-endian doubles, the id right-aligned in 20 characters), each
-- sorted by (time, id): the transactions, those labelled fraud, those labelled genuine.
-- KEYS: per customer operation its transactions zset, rows string and frauds zset; then per
-- terminal operation its transactions and frauds zsets.
local ROW, ID_AT = 36, 16
local unpack_row = struct.unpack
local ttl, n_customers = tonumber(ARGV[1]), tonumber(ARGV[2])

local function id_at(blob, at)
  return string.match(string.sub(blob, at + ID_AT, at + ROW - 1), '%S+')
end

-- Adds the blob's transactions (NX); returns the rows this call added, in order. Variadic
-- ZMSCORE and ZADD, at most 1,000 members a call (Lua's unpack has a stack limit).
local function add(zset, blob)
  local added = {}
  local fresh = redis.call('EXISTS', zset) == 0
  for first = 1, #blob, 1000 * ROW do
    local last = math.min(#blob, first + 1000 * ROW - 1)
    local ids, args = {}, {}
    for at = first, last, ROW do ids[#ids + 1] = id_at(blob, at) end
    local scores = fresh and {} or redis.call('ZMSCORE', zset, unpack(ids))
    local n = 0
    for at = first, last, ROW do
      n = n + 1
      if not scores[n] then
        args[#args + 1] = unpack_row('<d', blob, at)
        args[#args + 1] = ids[n]
        added[#added + 1] = string.sub(blob, at, at + ROW - 1)
      end
    end
    if #args > 0 then redis.call('ZADD', zset, 'NX', unpack(args)) end
  end
  return added
end

local function before(a, b)  -- row order: time, then the right-aligned id
  local ta, tb = unpack_row('<d', a, 1), unpack_row('<d', b, 1)
  if ta ~= tb then return ta < tb end
  return string.sub(a, ID_AT + 1) < string.sub(b, ID_AT + 1)
end

-- The rows before the first added one are found by bisection and kept as one string: a
-- piece of an entity's history merged below live rows costs its rows and the live ones.
local function merged(rows, added)
  local lo, hi = 0, #rows / ROW
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(string.sub(rows, mid * ROW + 1, (mid + 1) * ROW), added[1]) then
      lo = mid + 1
    else
      hi = mid
    end
  end
  local out, i, at = {string.sub(rows, 1, lo * ROW)}, 1, lo * ROW + 1
  while at <= #rows or i <= #added do
    local row = at <= #rows and string.sub(rows, at, at + ROW - 1) or nil
    if row ~= nil and (i > #added or before(row, added[i])) then
      out[#out + 1], at = row, at + ROW
    else
      out[#out + 1], i = added[i], i + 1
    end
  end
  return table.concat(out)
end

local function labels(zset, frauds, fraud_blob, genuine_blob)
  for at = 1, #fraud_blob, ROW do
    local id = id_at(fraud_blob, at)
    local ts = redis.call('ZSCORE', zset, id)
    if ts then redis.call('ZADD', frauds, ts, id) end
  end
  if #genuine_blob == 0 or redis.call('EXISTS', frauds) == 0 then return end
  for at = 1, #genuine_blob, ROW do redis.call('ZREM', frauds, id_at(genuine_blob, at)) end
end

local a = 3
for c = 0, n_customers - 1 do
  local k = 3 * c
  local added = add(KEYS[k + 1], ARGV[a])
  local last = #added > 0 and redis.call('GETRANGE', KEYS[k + 2], -ROW, -1)
  if last and (last == '' or before(last, added[1])) then  -- a later piece: appended
    redis.call('APPEND', KEYS[k + 2], table.concat(added))
  elseif last then
    redis.call('SET', KEYS[k + 2], merged(redis.call('GET', KEYS[k + 2]), added))
  end
  labels(KEYS[k + 1], KEYS[k + 3], ARGV[a + 1], ARGV[a + 2])
  for j = 1, 3 do redis.call('PEXPIRE', KEYS[k + j], ttl) end
  a = a + 3
end
for k = 3 * n_customers, #KEYS - 1, 2 do
  add(KEYS[k + 1], ARGV[a])
  labels(KEYS[k + 1], KEYS[k + 2], ARGV[a + 1], ARGV[a + 2])
  redis.call('PEXPIRE', KEYS[k + 1], ttl)
  redis.call('PEXPIRE', KEYS[k + 2], ttl)
  a = a + 3
end
return 1
"""
