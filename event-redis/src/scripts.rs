//! The Lua scripts that make multi-key moves atomic. Every script touches only keys of one
//! stream (same `{hash tag}`), so they also run on Redis Cluster.

use std::sync::LazyLock;

use redis::Script;

/// Compares two stream ids numerically; shared by the scripts that need it.
const CMP_IDS: &str = r#"
local function parse_id(s)
  local ms, seq = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(ms) or 0, tonumber(seq) or 0
end
local function cmp_ids(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  if am ~= bm then return am < bm and -1 or 1 end
  if as ~= bs then return as < bs and -1 or 1 end
  return 0
end
local function group_info(key, group)
  if redis.call('EXISTS', key) == 0 then return nil end
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local t = {}
    for i = 1, #g, 2 do t[g[i]] = g[i + 1] end
    if t['name'] == group then return t end
  end
  return nil
end
"#;

/// Claims idle entries and reports their delivery counts.
/// KEYS: stream. ARGV: group, consumer, min-idle ms, start cursor, count.
/// Returns {next cursor, {{id, fields, deliveries}, ...}}.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    table.insert(out, {e[1], e[2], n})
  else
    redis.call('XACK', KEYS[1], ARGV[1], e[1])
  end
end
return {r[1], out}
"#,
    )
});

/// Re-reads this consumer's own pending entries after `after`, with delivery counts.
/// KEYS: stream. ARGV: group, consumer, count, after.
/// Returns {last id seen or false, {{id, fields, deliveries}, ...}}.
pub(crate) static READ_PENDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], ARGV[4])
local out = {}
local last = false
if not r or not r[1] then return {last, out} end
for _, e in ipairs(r[1][2]) do
  last = e[1]
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1, ARGV[2])
    local n = 1
    if p[1] then n = p[1][4] end
    table.insert(out, {e[1], e[2], n})
  else
    redis.call('XACK', KEYS[1], ARGV[1], e[1])
  end
end
return {last, out}
"#,
    )
});

/// Resets the idle time of entries still owned by this consumer (never steals them back).
/// KEYS: stream. ARGV: group, consumer, ids...
pub(crate) static KEEP_ALIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if p[1] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
"#,
    )
});

/// Acks an entry and schedules its retry. KEYS: entry stream, retry set.
/// ARGV: group, id, due ms, member.
pub(crate) static RETRY_LATER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"#,
    )
});

/// Moves due retries to the group's due stream. KEYS: retry set, due stream.
/// ARGV: now ms, limit. Members are `<nonce>|` followed by `<len>:<bytes>` fields.
/// Returns {moved, next due score or false}.
pub(crate) static PROMOTE_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(due) do
  local fields = {}
  local pos = string.find(m, '|', 1, true) + 1
  while pos <= #m do
    local colon = string.find(m, ':', pos, true)
    local len = tonumber(string.sub(m, pos, colon - 1))
    table.insert(fields, string.sub(m, colon + 1, colon + len))
    pos = colon + len + 1
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('ZREM', KEYS[1], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or false}
"#,
    )
});

/// Acks an entry and appends it to the dead-letter stream. KEYS: entry stream, dead-letter
/// stream. ARGV: group, id, max length, then the fields to append.
pub(crate) static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
"#,
    )
});

/// Moves a dead letter back to the group's due stream with a fresh attempt budget.
/// KEYS: dead-letter stream, due stream. ARGV: dead-letter id. Returns 1, or 0 if not found.
pub(crate) static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local r = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #r == 0 then return 0 end
local f = r[1][2]
local out = {}
local handler = ''
for i = 1, #f, 2 do
  local k = f[i]
  if k == 'dl_handler' then handler = f[i + 1] end
  if string.sub(k, 1, 3) ~= 'dl_' and k ~= 'attempt' and k ~= 'h' then
    table.insert(out, k)
    table.insert(out, f[i + 1])
  end
end
table.insert(out, 'attempt')
table.insert(out, '1')
if handler ~= '' then
  table.insert(out, 'h')
  table.insert(out, handler)
end
redis.call('XADD', KEYS[2], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
"#,
    )
});

/// Whether a group settled a stream up to an id. KEYS: stream, retry set, due stream.
/// ARGV: group, upto. Returns 1 or 0.
pub(crate) static SETTLED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{CMP_IDS}
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
local g = group_info(KEYS[1], ARGV[1])
if g then
  if cmp_ids(g['last-delivered-id'], ARGV[2]) < 0 then return 0 end
  if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', ARGV[2], 1) > 0 then return 0 end
end
local d = group_info(KEYS[3], ARGV[1])
if d then
  if d['pending'] > 0 then return 0 end
  local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  if #last > 0 and cmp_ids(d['last-delivered-id'], last[1][1]) < 0 then return 0 end
end
return 1
"#
    ))
});

/// Trims what every group has acked, then applies the hard cap; reports group lag.
/// KEYS: stream. ARGV: cap. Returns {trimmed as acked, dropped by cap, {{group, lag, pending}...}}.
pub(crate) static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{CMP_IDS}
if redis.call('EXISTS', KEYS[1]) == 0 then return {{0, 0, {{}}}} end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local floor = nil
local report = {{}}
for _, g in ipairs(groups) do
  local t = {{}}
  for i = 1, #g, 2 do t[g[i]] = g[i + 1] end
  local first = t['last-delivered-id']
  if t['pending'] > 0 then
    local p = redis.call('XPENDING', KEYS[1], t['name'])
    if p[2] and cmp_ids(p[2], first) < 0 then first = p[2] end
  end
  if not floor or cmp_ids(first, floor) < 0 then floor = first end
  local lag = t['lag']
  if type(lag) ~= 'number' then lag = -1 end
  table.insert(report, {{t['name'], lag, t['pending']}})
end
local acked = 0
if floor then acked = redis.call('XTRIM', KEYS[1], 'MINID', '~', floor) end
local capped = redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
return {{acked, capped, report}}
"#
    ))
});
