-- task_lock.lua: lock tasks for one worker's fetch: the tasks whose locks have expired (taken again, their
-- entries claimed for the worker in the group's pending list), then the entries XREADGROUP just delivered.
--
-- An entry whose task is no longer queued (revoked by a pause or cancel, gone with its TTL) is acknowledged and
-- deleted instead: it was offered once and is not wanted now.
-- KEYS[1] the queue's stream  KEYS[2] its lock set  KEYS[3] the tenant's queue stats  KEYS[4..] task hashes
-- ARGV[1] now (ms)  ARGV[2] lockMs  ARGV[3] the worker's id  ARGV[4] the queue name  ARGV[5] the most to lock
-- ARGV[6] how many of KEYS[4..] are expired locks (the rest are new entries)
-- ARGV[7..] one lock token per task hash, then (for the new ones) their entry ids
-- Returns, per task locked, in order: its id, then its hash's fields and values (HGETALL).

local now, lock_ms, worker, queue = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local most, expired = tonumber(ARGV[5]), tonumber(ARGV[6])
local n = #KEYS - 3
local locked, count = {}, 0
for i = 1, n do
  local key, token = KEYS[3 + i], ARGV[6 + i]
  local f = redis.call('HMGET', key, 'status', 'lockExpiresAt', 'taskId', 'entry')
  local status, expires, task, entry = f[1], tonumber(f[2] or '0'), f[3], f[4]
  local take = false
  if i <= expired then
    take = status == 'locked' and expires <= now
    if take then
      redis.call('HINCRBY', KEYS[3], queue .. ':locksExpired', 1)
      redis.call('XCLAIM', KEYS[1], 'workers', worker, 0, entry)
    elseif status ~= 'locked' then
      redis.call('ZREM', KEYS[2], task or '')
    end
  else
    take = status == 'queued'
    if not take and status ~= 'locked' then  -- (a locked one is an entry XAUTOCLAIM found: its lock stands)
      local id = ARGV[6 + n + (i - expired)]
      redis.call('XACK', KEYS[1], 'workers', id)
      redis.call('XDEL', KEYS[1], id)
    end
  end
  if take and count < most then
    count = count + 1
    local until_ms = now + lock_ms
    redis.call('HSET', key, 'status', 'locked', 'lockToken', token, 'lockExpiresAt', until_ms, 'workerId', worker)
    redis.call('HINCRBY', key, 'deliveries', 1)
    redis.call('ZADD', KEYS[2], until_ms, task)
    locked[#locked + 1] = task
    locked[#locked + 1] = redis.call('HGETALL', key)
  end
end
return locked
