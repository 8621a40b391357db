//! The cluster's Lua scripts: each join, leave, lease renewal and snapshot is one
//! script, so Redis runs it whole, between any two other managers' commands.
//!
//! Keys, all under the prefix's hash tag `{p}` (passed as `ARGV[1]`):
//! `:epoch` (the cluster's epoch), `:ver` (its version, one per change), `:next`
//! (the highest offset ever handed out), `:free` (freed offsets, scored by
//! themselves, so the lowest comes first), `:portmax` (VB's `iPortMax`,
//! cluster-wide), `:ports` (held port -> offset), `:members` (offset -> `MANAGER
//! IP PORT TOKEN NAME`; on a private network TOKEN is `key:KEY`, the member's
//! proven key, and a join's entry carries `key`), `:members-hash` (the members
//! file's hash, as the last manager to read it published it), `:order` (offsets scored by the version they joined at:
//! the document's order), `:by:MANAGER` (the offsets that manager serves),
//! `:leases` (manager -> lease deadline in Redis's milliseconds), `:tick` (when
//! any manager last renewed), `:canrelay` (members that said `can relay`),
//! `:relay` (offset -> the `<relay>` its entry shows), `:addr` (address, IPv6
//! by its prefix -> members from it), `:addrof` (offset -> its address), `:names`
//! (case-folded name -> the offset that holds it) and `:nameof` (offset -> its
//! folded name), and the stream `:log`,
//! whose entries carry the version and the change (`op` join, leave, name,
//! relay or move, `o` the offset, `m` its manager, and for a join `ip`, `port`,
//! `name` and `t`, the joining manager's number for its request). Every change
//! to the document is one `INCR` of `:ver` and one stream entry carrying it (`v`),
//! so every manager numbers it alike; `canrelay` and `complain` entries change
//! no document and carry no version.

/// Removes member `o` (if `owner` serves it, or anyone does when `owner` is
/// empty): frees its offset and port, bumps the version and logs the leave.
/// The next free port after `iPortMax` (`:portmax`), wrapping past 65535 to the
/// first port and skipping ports held; it becomes `iPortMax`. Nil when every port
/// is held. Shared by a join and a port move, as the single manager's counter is.
const NEXT_PORT: &str = r"
local function next_port(p, first)
  local pm = tonumber(redis.call('GET', p..':portmax') or (first - 1))
  for _ = first, 65535 do
    if pm >= 65535 or pm < first - 1 then pm = first else pm = pm + 1 end
    if redis.call('HEXISTS', p..':ports', pm) == 0 then
      redis.call('SET', p..':portmax', pm)
      return pm
    end
  end
  return nil
end
";

const REMOVE: &str = r"
local function remove(p, o, owner, maxlen, by)
  local m = redis.call('HGET', p..':members', o)
  if not m then return 0 end
  local who, port = string.match(m, '^(%S+) %S+ (%d+)')
  if owner ~= '' and who ~= owner then return 0 end
  redis.call('HDEL', p..':members', o)
  if port then redis.call('HDEL', p..':ports', port) end
  if who then redis.call('SREM', p..':by:'..who, o) end
  redis.call('ZADD', p..':free', o, o)
  redis.call('ZREM', p..':order', o)
  redis.call('SREM', p..':canrelay', o)
  redis.call('HDEL', p..':relay', o)
  local n = redis.call('HGET', p..':nameof', o)
  if n then
    redis.call('HDEL', p..':nameof', o)
    if redis.call('HGET', p..':names', n) == o then redis.call('HDEL', p..':names', n) end
  end
  local a = redis.call('HGET', p..':addrof', o)
  if a then
    redis.call('HDEL', p..':addrof', o)
    if redis.call('HINCRBY', p..':addr', a, -1) <= 0 then redis.call('HDEL', p..':addr', a) end
  end
  local v = redis.call('INCR', p..':ver')
  redis.call('XADD', p..':log', 'MAXLEN', '~', maxlen, '*', 'v', v, 'op', 'leave', 'o', o, 'm', who or '', 'by', by)
  return 1
end
";

/// ARGV: prefix, manager, ip, first port, token, stream length, wanted offset,
/// wanted port (0 0: any), name, tag, `--max-servants`, `--max-per-address`, the
/// address counted for it, the name case-folded (claimed in `:names` if free). The wanted pair is a servant this manager already
/// serves, registered again after Redis lost it; it keeps them if both are free,
/// and is not counted against the limits (it is served already). Otherwise a
/// newcomer past either limit, counted over the whole cluster, is refused;
/// else it gets the lowest free offset and the next free port after `iPortMax`,
/// wrapping past 65535 to the first port. Returns `ok OFFSET PORT VERSION`,
/// `full` when no port is free, `refused max` or `refused address`.
pub(super) fn join() -> String {
    format!("{NEXT_PORT}{}", JOIN)
}

const JOIN: &str = r"
local p, mgr = ARGV[1], ARGV[2]
local first = tonumber(ARGV[4])
local o, port = tonumber(ARGV[7]), tonumber(ARGV[8])
if o == 0 then
  if redis.call('HLEN', p..':members') >= tonumber(ARGV[11]) then return {'refused', 'max'} end
  if tonumber(redis.call('HGET', p..':addr', ARGV[13]) or '0') >= tonumber(ARGV[12]) then
    return {'refused', 'address'}
  end
end
if o > 0 and (redis.call('HEXISTS', p..':members', o) == 1 or redis.call('HEXISTS', p..':ports', port) == 1) then
  o = 0
end
if o > 0 then
  redis.call('ZREM', p..':free', o)
  local n = tonumber(redis.call('GET', p..':next') or '0')
  for k = n + 1, o - 1 do redis.call('ZADD', p..':free', k, k) end
  if o > n then redis.call('SET', p..':next', o) end
else
  local f = redis.call('ZRANGE', p..':free', 0, 0)
  if f[1] then
    o = tonumber(f[1])
    redis.call('ZREM', p..':free', f[1])
  else
    o = redis.call('INCR', p..':next')
  end
  port = next_port(p, first)
  if not port then
    redis.call('ZADD', p..':free', o, o)
    return {'full'}
  end
end
redis.call('HSET', p..':ports', port, o)
redis.call('HSET', p..':members', o, mgr..' '..ARGV[3]..' '..port..' '..ARGV[5]..' '..ARGV[9])
redis.call('SADD', p..':by:'..mgr, o)
redis.call('HSET', p..':addrof', o, ARGV[13])
redis.call('HINCRBY', p..':addr', ARGV[13], 1)
if ARGV[14] ~= '' and redis.call('HSETNX', p..':names', ARGV[14], o) == 1 then
  redis.call('HSET', p..':nameof', o, ARGV[14])
end
local v = redis.call('INCR', p..':ver')
redis.call('ZADD', p..':order', v, o)
local key = string.match(ARGV[5], '^key:(%S+)$') or ''
redis.call('XADD', p..':log', 'MAXLEN', '~', ARGV[6], '*', 'v', v, 'op', 'join', 'o', o, 'm', mgr, 'ip', ARGV[3], 'port', port, 'name', ARGV[9], 't', ARGV[10], 'key', key)
return {'ok', o, port, v}
";

/// ARGV: prefix, offset, manager (who must serve it), stream length.
pub(super) fn leave() -> String {
    format!("{REMOVE}\nreturn remove(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[3])")
}

/// ARGV: prefix, manager, lease ms, renew ms, stream length. Renews this
/// manager's lease from Redis's own clock and reaps managers whose lease ran
/// out. When no manager has renewed for two renewal periods, Redis itself was
/// stopped, unreachable or restarted: every lease gets a fresh term first, so
/// that no manager is reaped for Redis's own absence. Returns members reaped.
pub(super) fn tick() -> String {
    format!(
        "{REMOVE}{}",
        r"
local p, mgr = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local last = tonumber(redis.call('GET', p..':tick') or '0') or 0
redis.call('SET', p..':tick', now)
if now - last > 2 * tonumber(ARGV[4]) then
  for _, m in ipairs(redis.call('ZRANGE', p..':leases', 0, -1)) do
    redis.call('ZADD', p..':leases', now + lease, m)
  end
end
redis.call('ZADD', p..':leases', now + lease, mgr)
local gone = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', p..':leases', '-inf', now, 'LIMIT', 0, 8)) do
  for _, o in ipairs(redis.call('SMEMBERS', p..':by:'..m)) do
    gone = gone + remove(p, o, m, ARGV[5], mgr)
  end
  redis.call('DEL', p..':by:'..m)
  redis.call('ZREM', p..':leases', m)
end
return gone
"
    )
}

/// ARGV: prefix, an epoch to set if there is none. Returns the epoch, the
/// version, the stream's last id, the members that can relay, offset and
/// `<relay>` pairs, then offset and member pairs in the order they joined (the
/// document's): everything a manager needs to start following the stream from
/// exactly that point, with the document every other manager has.
pub(super) const SNAPSHOT: &str = r"
local p = ARGV[1]
redis.call('SET', p..':epoch', ARGV[2], 'NX')
local out = {redis.call('GET', p..':epoch'), redis.call('GET', p..':ver') or '0'}
local last = redis.call('XREVRANGE', p..':log', '+', '-', 'COUNT', 1)
out[3] = (last[1] and last[1][1]) or '0-0'
out[4] = redis.call('SMEMBERS', p..':canrelay')
out[5] = redis.call('HGETALL', p..':relay')
for _, o in ipairs(redis.call('ZRANGE', p..':order', 0, -1)) do
  local m = redis.call('HGET', p..':members', o)
  if m then
    out[#out + 1] = o
    out[#out + 1] = m
  end
end
local all = redis.call('HGETALL', p..':members')
for i = 1, #all, 2 do
  if not redis.call('ZSCORE', p..':order', all[i]) then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
";

/// ARGV: prefix, offset, token, manager, stream length. A servant that failed
/// over resumes its entry here (a private network's member by its proven key,
/// `key:KEY`, in place of a token): if the entry is there and the token is its own,
/// the entry is this manager's from now on (its old manager's leave no longer
/// removes it, nor does its reaping), and a `move` entry tells every manager.
/// The document does not change, so neither does the version. Returns `ok PORT`
/// or `refused`.
pub(super) const RESUME: &str = r"
local p, o, mgr = ARGV[1], ARGV[2], ARGV[4]
local m = redis.call('HGET', p..':members', o)
if not m then return {'refused'} end
local who, ip, port, token, name = string.match(m, '^(%S+) (%S+) (%d+) (%S+) ?(.*)$')
if not who or token ~= ARGV[3] or (#token ~= 32 and string.sub(token, 1, 4) ~= 'key:') then return {'refused'} end
redis.call('HSET', p..':members', o, mgr..' '..ip..' '..port..' '..token..' '..name)
redis.call('SREM', p..':by:'..who, o)
redis.call('SADD', p..':by:'..mgr, o)
local v = redis.call('GET', p..':ver') or '0'
redis.call('XADD', p..':log', 'MAXLEN', '~', ARGV[5], '*', 'v', v, 'op', 'move', 'o', o, 'm', mgr, 'from', who)
return {'ok', tonumber(port)}
";

/// ARGV: prefix, offset, manager, name, stream length, the name case-folded:
/// the member's new name, claimed in `:names` (folded name -> offset, and
/// `:nameof` back) so that two managers cannot both grant it. The old name of
/// that offset is released. Returns the new version, -1 when another member
/// holds the name, -2 when the member already has it, 0 when the entry is not
/// there or not this manager's.
pub(super) const NAME: &str = r"
local p, o, want = ARGV[1], ARGV[2], ARGV[6]
local m = redis.call('HGET', p..':members', o)
if not m then return 0 end
local head, now = string.match(m, '^(%S+ %S+ %S+ %S+) ?(.*)$')
if not head or string.sub(head, 1, #ARGV[3] + 1) ~= ARGV[3]..' ' then return 0 end
if want ~= '' then
  local h = redis.call('HGET', p..':names', want)
  if h and h ~= o then return -1 end
end
if now == ARGV[4] then return -2 end
local old = redis.call('HGET', p..':nameof', o)
if old and old ~= want and redis.call('HGET', p..':names', old) == o then
  redis.call('HDEL', p..':names', old)
end
if want == '' then
  redis.call('HDEL', p..':nameof', o)
else
  redis.call('HSET', p..':names', want, o)
  redis.call('HSET', p..':nameof', o, want)
end
redis.call('HSET', p..':members', o, head..' '..ARGV[4])
local v = redis.call('INCR', p..':ver')
redis.call('XADD', p..':log', 'MAXLEN', '~', ARGV[5], '*', 'v', v, 'op', 'name', 'o', o, 'm', ARGV[3], 'name', ARGV[4])
return v
";

/// ARGV: prefix, offset, manager (who must serve it), stream length: the member
/// said `can relay`; every manager may choose it (`relay.rs`).
pub(super) const CAN_RELAY: &str = r"
local p = ARGV[1]
local m = redis.call('HGET', p..':members', ARGV[2])
if not m or string.sub(m, 1, #ARGV[3] + 1) ~= ARGV[3]..' ' then return 0 end
if redis.call('SADD', p..':canrelay', ARGV[2]) == 0 then return 0 end
redis.call('XADD', p..':log', 'MAXLEN', '~', ARGV[4], '*', 'op', 'canrelay', 'o', ARGV[2], 'm', ARGV[3])
return 1
";

/// ARGV: prefix, offset, manager (who must serve it), relay (`IP:PORT`, `none`,
/// or empty: reached directly), stream length: what the member's `<relay>`
/// shows, a change of the document like a name (none if it shows that already).
pub(super) const SHOW_RELAY: &str = r"
local p = ARGV[1]
local m = redis.call('HGET', p..':members', ARGV[2])
if not m or string.sub(m, 1, #ARGV[3] + 1) ~= ARGV[3]..' ' then return 0 end
if (redis.call('HGET', p..':relay', ARGV[2]) or '') == ARGV[4] then return 0 end
if ARGV[4] == '' then
  redis.call('HDEL', p..':relay', ARGV[2])
else
  redis.call('HSET', p..':relay', ARGV[2], ARGV[4])
end
local v = redis.call('INCR', p..':ver')
redis.call('XADD', p..':log', 'MAXLEN', '~', ARGV[5], '*', 'v', v, 'op', 'relay', 'o', ARGV[2], 'm', ARGV[3], 'relay', ARGV[4])
return v
";

/// ARGV: prefix, offset complained about, complainer's offset, stream length:
/// `cannot reach` about another manager's member, for the manager that serves
/// it to count. Not a change of the document: no version.
pub(super) const COMPLAIN: &str = r"
local p = ARGV[1]
if redis.call('HEXISTS', p..':members', ARGV[2]) == 0 then return 0 end
redis.call('XADD', p..':log', 'MAXLEN', '~', ARGV[4], '*', 'op', 'complain', 'o', ARGV[2], 'from', ARGV[3])
return 1
";

/// ARGV: prefix, offset, manager (who must serve it), its port now, first port,
/// stream length, tag: the member cannot listen on its port; it gets the next
/// free one after `iPortMax`, as a join would, and its entry is logged as a join
/// again, tagged like one, and goes to the end of `:order` (every manager lists
/// it anew, at the end). Returns `ok PORT VERSION`, `full`, or 0 when it is not
/// that manager's member on that port.
pub(super) fn port_move() -> String {
    format!("{NEXT_PORT}{}", PORT_MOVE)
}

const PORT_MOVE: &str = r"
local p, o = ARGV[1], ARGV[2]
local m = redis.call('HGET', p..':members', o)
if not m then return 0 end
local who, ip, old, token, name = string.match(m, '^(%S+) (%S+) (%d+) (%S+) ?(.*)$')
if who ~= ARGV[3] or old ~= ARGV[4] then return 0 end
local port = next_port(p, tonumber(ARGV[5]))
if not port then return {'full'} end
redis.call('HDEL', p..':ports', old)
redis.call('HSET', p..':ports', port, o)
redis.call('HSET', p..':members', o, who..' '..ip..' '..port..' '..token..' '..name)
local v = redis.call('INCR', p..':ver')
redis.call('ZADD', p..':order', v, o)
local key = string.match(token, '^key:(%S+)$') or ''
redis.call('XADD', p..':log', 'MAXLEN', '~', ARGV[6], '*', 'v', v, 'op', 'join', 'o', o, 'm', who, 'ip', ip, 'port', port, 'name', name, 't', ARGV[7], 'key', key)
return {'ok', port, v}
";

/// ARGV: prefix, the members file's hash as this manager read it. Returns the
/// hash published before, if any, and publishes this one.
pub(super) const MEMBERS_HASH: &str = r"
local old = redis.call('GET', ARGV[1]..':members-hash')
redis.call('SET', ARGV[1]..':members-hash', ARGV[2])
return old
";
