-- schedule_save.lua: create or change a schedule: its fields, its place in the tenant's list, its next fire time
-- in the tenant's due set, all in one write (every key is in the tenant's slot).
--
-- KEYS[1] schedule hash   KEYS[2] the tenant's schedules (list)   KEYS[3] the tenant's due set
-- ARGV[1] scheduleID   ARGV[2] the fields to set, JSON {name: value}   ARGV[3] the next fire time (epoch ms) or ''
--   (none: paused or ended)   ARGV[4] the rev the caller read ('' to create: refused if the schedule exists)
-- Returns the schedule's new rev, or 0 when the schedule is missing (or, to create, exists), or -1 when its rev is
-- no longer ARGV[4] (changed meanwhile: read it again).

local rev = redis.call('HGET', KEYS[1], 'rev')
if ARGV[4] == '' then
  if rev then
    return 0
  end
  rev = '0'
else
  if not rev then
    return 0
  end
  if rev ~= ARGV[4] then
    return -1
  end
end
local new_rev = tonumber(rev) + 1
local fields = cjson.decode(ARGV[2])
for name, value in pairs(fields) do
  redis.call('HSET', KEYS[1], name, tostring(value))
end
redis.call('HSET', KEYS[1], 'rev', new_rev, 'next', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
end
return new_rev
