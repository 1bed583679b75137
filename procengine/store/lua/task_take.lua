-- task_take.lua: the runner waiting for an external task takes its result once a worker settled it.
--
-- KEYS[1] the task hash
-- Returns {status, output, error, type, retryable}; status `taken` from now on if it was completed or failed
-- (any other status is returned alone: not settled yet, or revoked).

local r = redis.call('HMGET', KEYS[1], 'status', 'output', 'error', 'type', 'retryable')
local status = r[1]
if status == 'completed' or status == 'failed' then
  redis.call('HSET', KEYS[1], 'status', 'taken')
  return {status, r[2] or '', r[3] or '', r[4] or '', r[5] or ''}
end
return {status or 'missing'}
