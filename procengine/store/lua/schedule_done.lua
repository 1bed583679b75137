-- schedule_done.lua: the outcome of a firing, written once by the node that holds its lease: recorded in the
-- schedule's outcomes stream, and the firing taken out of the claimed ones (or, buffered, put back for later).
--
-- KEYS[1] the tenant's firings   KEYS[2] schedule hash   KEYS[3] the outcomes stream
-- ARGV[1] the firing (member)   ARGV[2] the lease the caller took   ARGV[3] the outcome, JSON {field: value}
-- ARGV[4] executionID started ('' if none)   ARGV[5] retry at (epoch ms: buffered) or ''   ARGV[6] outcomes kept
-- Returns 1 when written, 0 when the caller's lease is gone (another node took the firing over, or it is done).

local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at or tonumber(at) ~= tonumber(ARGV[2]) then
  return 0
end
local record = true
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[5], ARGV[1])
  -- a buffered firing says so once, not at each look
  record = redis.call('HGET', KEYS[2], 'buffered') ~= ARGV[1]
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[2], 'buffered', ARGV[1])
  end
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  if redis.call('HGET', KEYS[2], 'buffered') == ARGV[1] then
    redis.call('HDEL', KEYS[2], 'buffered')
  end
  if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[2], 'lastExecution', ARGV[4])
  end
end
if record and redis.call('EXISTS', KEYS[2]) == 1 then
  local flat = {}
  for name, value in pairs(cjson.decode(ARGV[3])) do
    flat[#flat + 1] = name
    flat[#flat + 1] = tostring(value)
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(flat))
end
return 1
