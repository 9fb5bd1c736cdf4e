"""Lua scripts of RedisLimiter. Each runs atomically in Redis, so every check and every write of one
acquire() (or settle()) across all scopes happens as one step: two gateway processes can never both take
the last unit of a budget.

Layout: six KEYS per scope, then one last key: the store's epoch (see below). Per scope, in this order:
  1 rpm  zset  request id -> timestamp (rolling 60 s window)
  2 tpm  zset  request id -> timestamp
  3 tpmv hash  request id -> tokens, plus '_sum' (running total, so checks need not scan the window)
  4 spend string: settled spend in pico-USD of the period (ACQUIRE: the current one; SETTLE: the period the
               request's ledger row lands in)
  5 res  zset  request id -> expiry of its reservation (or of its "settled" marker); of no period
  6 resv hash  request id -> reserved pico-USD, or '-' once settled; plus '_sum'

Money and tokens are added with INCRBY/HINCRBY on decimal strings (exact int64 in Redis): Lua numbers are
doubles and print large values as '1.2e+17', which Redis would reject. Only the comparisons use doubles,
exact up to 2^53 pUSD (~$9,007 per scope) and off by a few pUSD beyond - irrelevant for a limit check.

The epoch key is written when budgets are seeded from the ledger. Redis restarted without persistence (or
evicted keys) when it is missing: spend counters then hold nothing, so ACQUIRE admits no budgeted request
until the spend has been reseeded from the ledger (RESTORE), and SETTLE adds no spend to a lost counter
(the request's ledger row is counted by the reseed instead).
"""

from __future__ import annotations

_HELPERS = r"""
local function num(x) return tonumber(x) or 0 end

-- Drops members scored <= upto from zset z and their amounts from hash h and its '_sum'.
local function prune(z, h, upto)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', upto, 'LIMIT', 0, 500)
    if #old == 0 then return end
    local amounts = redis.call('HMGET', h, unpack(old))
    for j = 1, #old do
      local a = amounts[j]
      -- '0' is skipped because Redis does not parse '-0' as an integer; '-' is a settled marker.
      if a and a ~= '0' and a ~= '-' then redis.call('HINCRBY', h, '_sum', '-' .. a) end
    end
    redis.call('HDEL', h, unpack(old))
    redis.call('ZREM', z, unpack(old))
    if #old < 500 then return end
  end
end

-- Sets h[id] = amount and keeps '_sum' right, also when the same id is written twice.
local function put(h, id, amount)
  local old = redis.call('HGET', h, id)
  redis.call('HSET', h, id, amount)
  if old and old ~= '-' then
    local delta = num(amount) - num(old)
    if delta ~= 0 then redis.call('HINCRBY', h, '_sum', delta) end
  elseif amount ~= '0' then
    redis.call('HINCRBY', h, '_sum', amount)
  end
end
"""

# ARGV: now, cutoff (now - 60), request id, est tokens, est cost, reservation expiry, reservation keys TTL,
# window keys TTL; then per scope: rpm, tpm, budget ('' = no limit).
# Returns {'0', 'ok', per scope: rpm count, oldest rpm score, tpm used, oldest tpm score ('' = no such
# limit)} when admitted ({} for a retried acquire already counted), else {scope index, 'budget', spent,
# reserved} | {i, 'rpm', count, score of the entry whose expiry admits the request or ''} | {i, 'tpm', used,
# same}.
ACQUIRE = (
    _HELPERS
    + r"""
local now, cutoff, rid = ARGV[1], ARGV[2], ARGV[3]
local est_tok, est_cost, res_exp = ARGV[4], ARGV[5], ARGV[6]
local rttl, wttl = ARGV[7], ARGV[8]
local n = (#KEYS - 1) / 6

-- A budget is only checked against spend that survived: no epoch, no state (see the module docstring).
if redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  for i = 1, n do
    if ARGV[8 + (i - 1) * 3 + 3] ~= '' then return {'0', 'lost'} end
  end
end

-- A retried acquire (reply lost, client retried) must not count the request twice.
if n > 0 then
  if ARGV[9] ~= '' then
    if redis.call('ZSCORE', KEYS[1], rid) then return {} end
  elseif ARGV[10] ~= '' then
    if redis.call('ZSCORE', KEYS[2], rid) then return {} end
  elseif redis.call('HEXISTS', KEYS[6], rid) == 1 then
    return {}
  end
end

local function tpm_free_at(z, h, need)
  local start = 0
  local freed = 0
  while true do
    local e = redis.call('ZRANGE', z, start, start + 499, 'WITHSCORES')
    if #e == 0 then return '' end
    local ids = {}
    for j = 1, #e, 2 do ids[#ids + 1] = e[j] end
    local amounts = redis.call('HMGET', h, unpack(ids))
    for j = 1, #ids do
      freed = freed + num(amounts[j])
      if freed >= need then return e[2 * j] end
    end
    start = start + 500
  end
end

for i = 1, n do
  local k, b = (i - 1) * 6, 8 + (i - 1) * 3
  local rpm, tpm, budget = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if budget ~= '' then
    prune(KEYS[k + 5], KEYS[k + 6], now)
    local spent = redis.call('GET', KEYS[k + 4]) or '0'
    local reserved = redis.call('HGET', KEYS[k + 6], '_sum') or '0'
    -- At least one pico-USD must be left: a spent (or zero) budget admits nothing, even at estimate 0.
    if num(spent) + num(reserved) + math.max(num(est_cost), 1) > num(budget) then
      return {tostring(i), 'budget', spent, reserved}
    end
  end
  if rpm ~= '' then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 1], '-inf', cutoff)
    local count = redis.call('ZCARD', KEYS[k + 1])
    local limit = tonumber(rpm)
    if count + 1 > limit then
      local at = ''
      if limit > 0 then
        at = redis.call('ZRANGE', KEYS[k + 1], count - limit, count - limit, 'WITHSCORES')[2]
      end
      return {tostring(i), 'rpm', tostring(count), at}
    end
  end
  if tpm ~= '' then
    prune(KEYS[k + 2], KEYS[k + 3], cutoff)
    local used = num(redis.call('HGET', KEYS[k + 3], '_sum'))
    local limit = tonumber(tpm)
    if used + num(est_tok) > limit then
      local at = ''
      if num(est_tok) <= limit then
        at = tpm_free_at(KEYS[k + 2], KEYS[k + 3], used + num(est_tok) - limit)
      end
      return {tostring(i), 'tpm', tostring(used), at}
    end
  end
end

for i = 1, n do
  local k, b = (i - 1) * 6, 8 + (i - 1) * 3
  if ARGV[b + 1] ~= '' then
    redis.call('ZADD', KEYS[k + 1], now, rid)
    redis.call('EXPIRE', KEYS[k + 1], wttl)
  end
  if ARGV[b + 2] ~= '' then
    redis.call('ZADD', KEYS[k + 2], now, rid)
    put(KEYS[k + 3], rid, est_tok)
    redis.call('EXPIRE', KEYS[k + 2], wttl)
    redis.call('EXPIRE', KEYS[k + 3], wttl)
  end
  if ARGV[b + 3] ~= '' then
    redis.call('ZADD', KEYS[k + 5], res_exp, rid)
    put(KEYS[k + 6], rid, est_cost)
    redis.call('EXPIRE', KEYS[k + 5], rttl)
    redis.call('EXPIRE', KEYS[k + 6], rttl)
  end
end

-- Admitted: what is left of each window, read in the same step (the x-ratelimit-* headers need no
-- second round trip). Per scope: requests counted, oldest request's score, tokens counted, oldest entry's.
local out = {'0', 'ok'}
for i = 1, n do
  local k, b = (i - 1) * 6, 8 + (i - 1) * 3
  local rc, ro, tu, tt = '', '', '', ''
  if ARGV[b + 1] ~= '' then
    rc = tostring(redis.call('ZCARD', KEYS[k + 1]))
    ro = redis.call('ZRANGE', KEYS[k + 1], 0, 0, 'WITHSCORES')[2] or ''
  end
  if ARGV[b + 2] ~= '' then
    tu = redis.call('HGET', KEYS[k + 3], '_sum') or '0'
    tt = redis.call('ZRANGE', KEYS[k + 2], 0, 0, 'WITHSCORES')[2] or ''
  end
  out[#out + 1] = rc
  out[#out + 1] = ro
  out[#out + 1] = tu
  out[#out + 1] = tt
end
return out
"""
)

# ARGV: now, cutoff, request id, tokens, cost, window keys TTL, reservation keys TTL, settled-marker expiry;
# then per scope: '1' if tpm was reserved else '0', and the spend key's EXPIREAT ('-' = no budget reserved,
# '0' = lifetime, never expires).
SETTLE = (
    _HELPERS
    + r"""
local now, cutoff, rid = ARGV[1], ARGV[2], ARGV[3]
local tokens, cost, wttl, rttl, marker_exp = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local n = (#KEYS - 1) / 6
local intact = redis.call('EXISTS', KEYS[#KEYS]) == 1

for i = 1, n do
  local k, b = (i - 1) * 6, 8 + (i - 1) * 2
  if ARGV[b + 1] == '1' then
    prune(KEYS[k + 2], KEYS[k + 3], cutoff)
    if redis.call('ZSCORE', KEYS[k + 2], rid) then
      put(KEYS[k + 3], rid, tokens)
    elseif tokens ~= '0' then
      -- The request outlived the window: its real tokens count from now rather than never.
      redis.call('ZADD', KEYS[k + 2], now, rid)
      put(KEYS[k + 3], rid, tokens)
    end
    redis.call('EXPIRE', KEYS[k + 2], wttl)
    redis.call('EXPIRE', KEYS[k + 3], wttl)
  end
  local exp = ARGV[b + 2]
  if exp ~= '-' then
    prune(KEYS[k + 5], KEYS[k + 6], now)
    local held = redis.call('HGET', KEYS[k + 6], rid)
    -- '-' marks a settled reservation (kept a minute): a settle retried after a lost reply counts once.
    if held ~= '-' then
      if held and held ~= '0' then redis.call('HINCRBY', KEYS[k + 6], '_sum', '-' .. held) end
      redis.call('HSET', KEYS[k + 6], rid, '-')
      redis.call('ZADD', KEYS[k + 5], marker_exp, rid)
      redis.call('EXPIRE', KEYS[k + 5], rttl)
      redis.call('EXPIRE', KEYS[k + 6], rttl)
      if intact then
        redis.call('INCRBY', KEYS[k + 4], cost)
        if exp ~= '0' then redis.call('EXPIREAT', KEYS[k + 4], exp) end
      end
    end
  end
end
return {}
"""
)

# KEYS: spend keys, then the epoch key. ARGV: the epoch's value, then per spend key its value and EXPIREAT
# ('0' = never). Overwrites: it is the ledger's word on a store that lost its state (or never had one). Only
# the first process to restore does: the others find the epoch back and keep the spend counted since.
RESTORE = r"""
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {} end
for i = 1, #KEYS - 1 do
  redis.call('SET', KEYS[i], ARGV[2 * i])
  local exp = ARGV[2 * i + 1]
  if exp ~= '0' then redis.call('EXPIREAT', KEYS[i], exp) end
end
redis.call('SET', KEYS[#KEYS], ARGV[1])
return {}
"""

# KEYS: per reservation and budgeted scope, its res zset and resv hash. ARGV: new expiry, keys TTL, then one
# request id per pair. Extends reservations still open (not settled, not expired) of requests in flight.
EXTEND = r"""
local exp, rttl = ARGV[1], ARGV[2]
for i = 1, #KEYS / 2 do
  local z, h, rid = KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 2]
  local held = redis.call('HGET', h, rid)
  if held and held ~= '-' then
    redis.call('ZADD', z, 'XX', exp, rid)
    redis.call('EXPIRE', z, rttl)
    redis.call('EXPIRE', h, rttl)
  end
end
return {}
"""
