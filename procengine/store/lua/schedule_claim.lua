-- schedule_claim.lua: a node claims a schedule's due fire time: moves its due time on and records the firings it
-- comes to (one, several when catching up, or none) as claimed, in one write. Two nodes that read the same due time
-- cannot both claim it: the second finds the due time moved on (or the schedule changed) and does nothing.
--
-- KEYS[1] the tenant's due set   KEYS[2] schedule hash   KEYS[3] the tenant's firings   KEYS[4] the outcomes stream
-- ARGV[1] scheduleID   ARGV[2] the due time read (epoch ms)   ARGV[3] the schedule's rev read
-- ARGV[4] the next due time (epoch ms) or '' (none before endAt)   ARGV[5] when the firings may be tried (ms)
-- ARGV[6] the firings, JSON [member, ...]   ARGV[7] an outcome to record, JSON {field: value} or ''
-- ARGV[8] the outcomes kept (MAXLEN ~)
-- Returns 1 when claimed, 0 when the due time or the schedule is no longer what the caller read.

local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not due or tonumber(due) ~= tonumber(ARGV[2]) then
  return 0
end
if redis.call('HGET', KEYS[2], 'rev') ~= ARGV[3] then
  return 0
end
for _, member in ipairs(cjson.decode(ARGV[6])) do
  redis.call('ZADD', KEYS[3], 'NX', ARGV[5], member)
end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
end
redis.call('HSET', KEYS[2], 'next', ARGV[4])
if ARGV[7] ~= '' then
  local outcome = cjson.decode(ARGV[7])
  local flat = {}
  for name, value in pairs(outcome) do
    flat[#flat + 1] = name
    flat[#flat + 1] = tostring(value)
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[8], '*', unpack(flat))
end
return 1
