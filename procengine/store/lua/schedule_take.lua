-- schedule_take.lua: a node takes a claimed firing to try it, leased until ARGV[3] (the lease is the score, unique
-- to this take: the outcome's write checks it, so a node whose lease lapsed and was taken over writes nothing).
--
-- KEYS[1] the tenant's firings
-- ARGV[1] the firing (member)   ARGV[2] now (epoch ms)   ARGV[3] the lease's end (epoch ms, with a fraction)
-- Returns 1 when taken, 0 when it is gone or leased to another node.

local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at or tonumber(at) > tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1
