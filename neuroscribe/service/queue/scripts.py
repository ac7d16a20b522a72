"""Lua scripts of the Redis queue: each runs atomically on the server, so a crash between its steps
cannot happen (a stage is committed, handed on and acknowledged at once, or not at all).

Keys (prefix P): ``P:job:ID`` hash (status, stage, kind, attempts, error, summary, owner, cancel,
idem, idem_key, created_at, updated_at, progress:STAGE), ``P:result:ID`` the result's JSON, ``P:jobs``
zset of ids by creation time, ``P:jobs:u:OWNER`` the same per owner, ``P:idem:SCOPE`` -> "id hash"
(expires; SCOPE hashes the owner and the key), ``P:s:STAGE`` stream (group ``workers``; fields job, data, failures), ``P:delayed:STAGE`` zset
of retries by due time (ms), ``P:dead:STAGE`` dead-letter stream (job, stage, reason, data); a split
stage (``shards.py``): ``P:shout:ID:STAGE`` hash shard id -> output, ``P:shwait:ID:STAGE`` list of the
shard bodies not yet in the stream, ``P:shred:ID:STAGE`` the reduce's body, and the job hash's ``shards:STAGE`` / ``shards_done:STAGE`` counts.
"""

# KEYS: job hash, jobs zset, idem key (or ""), stream, owner's jobs zset (or "")
# ARGV: id, kind, stage, data, now, idem, job hash (sha256), idem ttl ms, owner, job key prefix
# Returns the new id, the id of the key's earlier job (same body), or "conflict:ID" (another body)
SUBMIT = """
if KEYS[3] ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen then
    local sid, shash = string.match(seen, '^(%S+) (%S+)$')
    if sid and redis.call('EXISTS', ARGV[10] .. sid) == 1 then
      if shash ~= ARGV[7] then return 'conflict:' .. sid end
      return sid
    end
  end
  redis.call('SET', KEYS[3], ARGV[1] .. ' ' .. ARGV[7], 'PX', ARGV[8])
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'kind', ARGV[2], 'status', 'queued', 'stage', ARGV[3],
           'attempts', 0, 'cancel', '0', 'created_at', ARGV[5], 'updated_at', ARGV[5], 'idem', ARGV[6],
           'idem_key', KEYS[3], 'owner', ARGV[9])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
if KEYS[5] ~= '' then redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1]) end
redis.call('XADD', KEYS[4], '*', 'job', ARGV[1], 'data', ARGV[4], 'failures', 0)
return ARGV[1]
"""

# the caller still owns the pending entry? (shared prologue)
_OWNER = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end
"""

# acknowledge and delete the entry; a cancelled job ends here, publishing nothing (shared prologue)
_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[2], 'cancel') == '1' then
  redis.call('HSET', KEYS[2], 'status', 'cancelled', 'stage', '', 'error', 'cancelled while running',
             'updated_at', ARGV[4])
  return -1
end
"""

# KEYS: stream, job hash
# ARGV: group, id, consumer, now
RENEW = _OWNER + """
if redis.call('HGET', KEYS[2], 'cancel') == '1' then return -1 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return 1
"""

# Give a delivery back: its idle time set past the lease, so the next claim takes it over.
# KEYS: stream, job hash. ARGV: group, id, consumer, idle ms, now
RELEASE = _OWNER + """
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'IDLE', ARGV[4], 'JUSTID')
redis.call('HSET', KEYS[2], 'status', 'queued', 'updated_at', ARGV[5])
return 1
"""

# Split a stage into shards (queue/shards.py). KEYS: stream, job hash, shard outputs hash, waiting list,
# reduce body. ARGV: group, id, consumer, now, this stage, shards in flight, total, the reduce's body (kept
# for the last commit), then one body per shard
SPLIT = _OWNER + _ACK + """
if redis.call('HGET', KEYS[2], 'stage') ~= ARGV[5] then return 0 end
local job = redis.call('HGET', KEYS[2], 'id')
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('SET', KEYS[5], ARGV[8])
local k = tonumber(ARGV[6])
for i = 9, #ARGV do
  if i - 9 < k then
    redis.call('XADD', KEYS[1], '*', 'job', job, 'data', ARGV[i], 'failures', 0)
  else
    redis.call('RPUSH', KEYS[4], ARGV[i])
  end
end
redis.call('HSET', KEYS[2], 'status', 'queued', 'attempts', 0, 'updated_at', ARGV[4],
           'shards:' .. ARGV[5], ARGV[7], 'shards_done:' .. ARGV[5], 0)
return 1
"""

# Commit one shard: its output kept once (HSETNX), the next waiting shard let in, and the reduce
# queued by the commit that completes the count. KEYS: stream, job hash, shard outputs hash, waiting list,
# reduce body. ARGV: group, id, consumer, now, this stage, shard id, output
SHARD_DONE = _OWNER + _ACK + """
if redis.call('HGET', KEYS[2], 'stage') ~= ARGV[5] then return 0 end
if redis.call('HSETNX', KEYS[3], ARGV[6], ARGV[7]) == 0 then return 0 end  -- committed before
local job = redis.call('HGET', KEYS[2], 'id')
local nxt = redis.call('LPOP', KEYS[4])
if nxt then redis.call('XADD', KEYS[1], '*', 'job', job, 'data', nxt, 'failures', 0) end
local done = redis.call('HLEN', KEYS[3])
redis.call('HSET', KEYS[2], 'shards_done:' .. ARGV[5], done, 'updated_at', ARGV[4])
if done == tonumber(redis.call('HGET', KEYS[2], 'shards:' .. ARGV[5])) then
  redis.call('XADD', KEYS[1], '*', 'job', job, 'data', redis.call('GET', KEYS[5]), 'failures', 0)
  redis.call('HSET', KEYS[2], 'status', 'queued')
end
return 1
"""

# KEYS: stream, job hash, next stream (or the same stream when last), result key
# ARGV: group, id, consumer, now, next stage ('' when last), next data, result ('' = none), this stage, summary
COMPLETE = _OWNER + _ACK + """
if redis.call('HGET', KEYS[2], 'stage') ~= ARGV[8] then return 0 end  -- another delivery committed it
if ARGV[5] ~= '' then
  local job = redis.call('HGET', KEYS[2], 'id')
  redis.call('XADD', KEYS[3], '*', 'job', job, 'data', ARGV[6], 'failures', 0)
  redis.call('HSET', KEYS[2], 'status', 'queued', 'stage', ARGV[5], 'attempts', 0, 'updated_at', ARGV[4])
else
  if ARGV[7] ~= '' then redis.call('SET', KEYS[4], ARGV[7]) end
  redis.call('HSET', KEYS[2], 'status', 'succeeded', 'stage', '', 'summary', ARGV[9], 'updated_at', ARGV[4])
end
return 1
"""

# Forget a finished job. KEYS: job hash, result key, jobs zset. ARGV: id, owner index prefix,
# cutoff ('' = any age: only a job that ended before it is deleted)
# Returns 'deleted', '' (no such job), 'kept' (too recent) or the status of an unfinished job
DELETE = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return '' end
if st ~= 'succeeded' and st ~= 'failed' and st ~= 'cancelled' then return st end
if ARGV[3] ~= '' and tonumber(redis.call('HGET', KEYS[1], 'updated_at')) >= tonumber(ARGV[3]) then return 'kept' end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
if owner ~= '' then redis.call('ZREM', ARGV[2] .. owner, ARGV[1]) end
local idem = redis.call('HGET', KEYS[1], 'idem_key') or ''
if idem ~= '' then
  local v = redis.call('GET', idem)
  if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then redis.call('DEL', idem) end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 'deleted'
"""

# Put a dead letter back into its stage. KEYS: dead stream, stream, job hash.
# ARGV: entry id, data, now, stage, job id. Returns 1, 0 (no such entry) or -1 (the job is gone)
REQUEUE = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
redis.call('XADD', KEYS[2], '*', 'job', ARGV[5], 'data', ARGV[2], 'failures', 0)
redis.call('HSET', KEYS[3], 'status', 'queued', 'stage', ARGV[4], 'attempts', 0, 'error', '', 'cancel', '0',
           'updated_at', ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
"""

# KEYS: stream, job hash, delayed zset, dead stream
# ARGV: group, id, consumer, now, reason, retry member ('' = no retry), due ms, stage, data, user error ('1': failed,
# not dead-lettered)
FAIL = _OWNER + _ACK + """
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
  redis.call('HSET', KEYS[2], 'status', 'queued', 'error', ARGV[5], 'updated_at', ARGV[4])
  return 1
end
local job = redis.call('HGET', KEYS[2], 'id') or ''
if ARGV[10] == '1' then
  if job ~= '' then
    redis.call('HSET', KEYS[2], 'status', 'failed', 'stage', '',
               'error', 'invalid job at ' .. ARGV[8] .. ': ' .. ARGV[5], 'updated_at', ARGV[4])
  end
  return 3
end
redis.call('XADD', KEYS[4], '*', 'job', job, 'stage', ARGV[8], 'reason', ARGV[5], 'data', ARGV[9])
if job ~= '' then
  redis.call('HSET', KEYS[2], 'status', 'failed', 'stage', '',
             'error', 'dead-lettered at ' .. ARGV[8] .. ': ' .. ARGV[5], 'updated_at', ARGV[4])
end
return 2
"""

# Move due retries into the stream. KEYS: delayed zset, stream. ARGV: now ms, max moved
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local msg = cjson.decode(m)
  redis.call('XADD', KEYS[2], '*', 'job', msg.job, 'data', msg.data, 'failures', msg.failures)
  redis.call('ZREM', KEYS[1], m)
end
return #due
"""

# Drop a delivery without running it (job cancelled, or a duplicate of a committed stage) or dead-letter it (malformed,
# or delivered too often). KEYS: stream, job hash, dead stream. ARGV: group, id, stage, reason,
# data, now, mode ('drop' | 'dead')
DISCARD = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[7] == 'dead' then
  local job = ''
  if KEYS[2] ~= '' then job = redis.call('HGET', KEYS[2], 'id') or '' end
  redis.call('XADD', KEYS[3], '*', 'job', job, 'stage', ARGV[3], 'reason', ARGV[4], 'data', ARGV[5])
  if job ~= '' then
    local st = redis.call('HGET', KEYS[2], 'status')
    if st ~= 'succeeded' and st ~= 'failed' and st ~= 'cancelled' then
      redis.call('HSET', KEYS[2], 'status', 'failed', 'stage', '',
                 'error', 'dead-lettered at ' .. ARGV[3] .. ': ' .. ARGV[4], 'updated_at', ARGV[6])
    end
  end
elseif KEYS[2] ~= '' and redis.call('HGET', KEYS[2], 'cancel') == '1' then
  local st = redis.call('HGET', KEYS[2], 'status')
  if st == 'queued' or st == 'running' then
    redis.call('HSET', KEYS[2], 'status', 'cancelled', 'stage', '', 'error', 'cancelled before it started',
               'updated_at', ARGV[6])
  end
end
return 1
"""

# KEYS: job hash. ARGV: now. Returns the status after the call ('' when no such job)
CANCEL = """
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return '' end
if st == 'succeeded' or st == 'failed' or st == 'cancelled' then return st end
redis.call('HSET', KEYS[1], 'cancel', '1', 'updated_at', ARGV[1])
if st == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'stage', '', 'error', 'cancelled before it started')
  return 'cancelled'
end
return st
"""

# Accept a delivery: count its attempt (failures recorded on the message + deliveries counted by
# Redis) and mark the job running, unless it must not run. KEYS: stream, job hash, the stage's
# shard outputs hash. ARGV: group, id, stage, failures, max attempts, now, shard id ('' none).
# Returns {code, attempt}: 1 run it, 0 drop (cancelled, final, a duplicate of a committed stage or
# shard), -1 no such job, -2 too many attempts (both dead-lettered by the caller)
START = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
local deliveries = 1
if #p > 0 then deliveries = tonumber(p[1][4]) end
local attempt = tonumber(ARGV[4]) + deliveries
local st = redis.call('HGET', KEYS[2], 'status')
if not st then return {-1, attempt} end
if st == 'succeeded' or st == 'failed' or st == 'cancelled' then return {0, attempt} end
if redis.call('HGET', KEYS[2], 'cancel') == '1' then return {0, attempt} end
if redis.call('HGET', KEYS[2], 'stage') ~= ARGV[3] then return {0, attempt} end
if ARGV[7] ~= '' and ARGV[7] ~= 'reduce' and redis.call('HEXISTS', KEYS[3], ARGV[7]) == 1 then return {0, attempt} end
if ARGV[7] == 'reduce' and redis.call('EXISTS', KEYS[3]) == 0 then return {0, attempt} end
if attempt > tonumber(ARGV[5]) then return {-2, attempt} end
redis.call('HSET', KEYS[2], 'status', 'running', 'attempts', attempt, 'updated_at', ARGV[6])
return {1, attempt}
"""
