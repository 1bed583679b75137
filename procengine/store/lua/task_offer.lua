-- task_offer.lua: offer one attempt of an external task to its queue, unless it is offered already.
--
-- The task's id names the attempt (<executionID>.<executionOrder>.<attempt>), so a runner that starts it again (a
-- node that adopted the execution, a resume after the pause grace) finds what became of it:
--   queued or locked   still offered (a worker may hold it): nothing written, the runner waits for it;
--   completed, failed  settled by a worker but not yet taken by a runner: taken now (status `taken`), and its
--                      result returned, so the work a worker finished is not done again;
--   none, taken, revoked  (a rewound or retried execution, a resume after a revoke): offered anew, a new entry.
-- KEYS[1] the task hash  KEYS[2] the queue's stream  KEYS[3] the tenant's queue set
-- ARGV[1] the queue name  ARGV[2] the hash's TTL (ms)  ARGV[3..] field, value pairs of the task
-- Returns {'queued'} | {'waiting'} | {'settled', status, output, error, type, retryable}

local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'locked' then
  return {'waiting'}
end
if status == 'completed' or status == 'failed' then
  local r = redis.call('HMGET', KEYS[1], 'output', 'error', 'type', 'retryable')
  redis.call('HSET', KEYS[1], 'status', 'taken')
  return {'settled', status, r[1] or '', r[2] or '', r[3] or '', r[4] or ''}
end
local revoked = redis.call('HGET', KEYS[1], 'revokedToken')
redis.call('DEL', KEYS[1])
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if revoked then redis.call('HSET', KEYS[1], 'revokedToken', revoked) end
local made = redis.pcall('XGROUP', 'CREATE', KEYS[2], 'workers', '0', 'MKSTREAM')
local id = redis.call('XADD', KEYS[2], '*', 'task', redis.call('HGET', KEYS[1], 'taskId'))
redis.call('HSET', KEYS[1], 'status', 'queued', 'entry', id, 'queuedAt', id)
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'queued'}
