-- task_settle.lua: a worker completes, fails or extends the lock of a task it holds; or a runner revokes it.
--
-- Checked against the task's lock: the worker's token must be the lock's. A lock that has expired but that no
-- other worker has taken since still counts (nothing else did the work). The stream entry is acknowledged and
-- deleted when the task settles or is revoked.
-- KEYS[1] the task hash  KEYS[2] the queue's stream  KEYS[3] its lock set
-- ARGV[1] the action: complete | fail | extend | revoke | untake  ARGV[2] the lock token ('' for revoke)
-- ARGV[3] now (ms)  ARGV[4] the hash's TTL after it settles (ms)  ARGV[5] lockMs (extend); for complete and fail:
-- 1 when the runner waits on the calling node, which hands it the result (the task is `taken` at once)
-- ARGV[6..] field, value pairs (the result)
-- untake: the runner the result was to be handed to had gone; the task is settled again (ARGV[5] its status), for
-- the runner that starts the attempt again
-- Returns {'ok', lockExpiresAt} | {'missing'} | {'stale'} | {'revoked'} | {'settled', status}
--   (revoke: {'ok'} when it revoked the task, {'settled', status} when a worker had settled it first)

local action, token, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local f = redis.call('HMGET', KEYS[1], 'status', 'lockToken', 'revokedToken', 'entry', 'taskId', 'settledToken')
local status, lock, revoked, entry, task, settled = f[1], f[2], f[3], f[4], f[5], f[6]
if not status then return {'missing'} end

local function release()
  redis.call('ZREM', KEYS[3], task)
  if entry then
    redis.call('XACK', KEYS[2], 'workers', entry)
    redis.call('XDEL', KEYS[2], entry)
  end
end

if action == 'untake' then
  if status == 'taken' and settled == token then redis.call('HSET', KEYS[1], 'status', ARGV[5]) end
  return {'ok'}
end

if action == 'revoke' then
  if status == 'queued' or status == 'locked' then
    release()
    redis.call('HSET', KEYS[1], 'status', 'revoked', 'revokedToken', lock or '')
    redis.call('HDEL', KEYS[1], 'lockToken', 'lockExpiresAt')
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return {'ok'}
  end
  return {'settled', status}
end

if status == 'locked' and lock == token then
  if action == 'extend' then
    local until_ms = now + tonumber(ARGV[5])
    redis.call('HSET', KEYS[1], 'lockExpiresAt', until_ms)
    redis.call('ZADD', KEYS[3], until_ms, task)
    return {'ok', tostring(until_ms)}
  end
  release()
  local fields = {}
  for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
  local settles = action == 'complete' and 'completed' or 'failed'
  if ARGV[5] == '1' then settles = 'taken' end
  redis.call('HSET', KEYS[1], 'status', settles, 'settledToken', token, 'settledAt', now, unpack(fields))
  redis.call('HDEL', KEYS[1], 'lockToken', 'lockExpiresAt')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'ok', ''}
end
if token ~= '' and token == revoked then return {'revoked'} end
if token ~= '' and token == settled then return {'settled', status} end
return {'stale'}
