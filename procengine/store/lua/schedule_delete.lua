-- schedule_delete.lua: a schedule out of the tenant's list and due set, with its hash and outcomes (its claimed
-- firings are dropped by the node that next takes them: it finds no schedule).
--
-- KEYS[1] schedule hash   KEYS[2] outcomes stream   KEYS[3] the tenant's schedules   KEYS[4] the tenant's due set
-- ARGV[1] scheduleID
-- Returns 1 when deleted, 0 when there was none.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
