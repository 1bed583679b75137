-- takeover.lua: make a node the owner of an execution, bumping the fencing epoch.
--
-- Succeeds only if the owner and epoch are still those the caller saw (compare-and-set), so two nodes
-- adopting at once cannot both win; every later write of the old owner is then refused by commit.lua. With
-- ARGV[9], also only if the last write is still the one the caller saw: an owner whose heartbeat lapsed may
-- still write between another node's load and its takeover, and that node would go on from a stale state
-- (an element completed twice).
--
-- Counts crashes: a running execution taken from another owner (an adoption: its node stopped, or stopped
-- renewing its heartbeat, while it ran) bumps the hash's `crashes` field; the actor puts it back to 0 in the
-- first write that shows progress (an element done, or every lane waiting). The caller fails an execution whose
-- count reaches its limit rather than run it again: a poison execution takes down only so many nodes.
--
-- Moves the execution between the owners' `owned` sets (KEYS[3], KEYS[4]) in the same write, where one script may
-- touch them (one Redis, Sentinel); on a Redis Cluster they live in the nodes' slots and the client moves it
-- beside this script (into the new owner's before, out of the old owner's after).
--
-- KEYS[1] execution hash   KEYS[2] log stream
-- KEYS[3] the expected owner's `owned` set   KEYS[4] the new owner's (both absent: leave them to the client)
-- ARGV[1] new owner ("" = none: a dead node's paused execution let go)   ARGV[2] expected owner ("" = none)
-- ARGV[3] expected epoch
-- ARGV[4] approximate MAXLEN of the log   ARGV[5] log time   ARGV[6] log event ("" = write none)
-- ARGV[7] log detail   ARGV[8] the execution id (the member of the `owned` sets)
-- ARGV[9] the lastCommit the caller loaded (absent: not checked; "" = none yet)
-- Returns {"OK", status, new epoch, crashes} | {"CONFLICT", owner, epoch} | {"MISSING", "", ""}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING', '', ''}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local epoch = redis.call('HGET', KEYS[1], 'epoch') or '0'
if owner ~= ARGV[2] or epoch ~= ARGV[3] then
  return {'CONFLICT', owner, epoch}
end
if ARGV[9] ~= nil and (redis.call('HGET', KEYS[1], 'lastCommit') or '') ~= ARGV[9] then
  return {'CONFLICT', owner, epoch}
end
local status = redis.call('HGET', KEYS[1], 'status') or ''
local crashes = tonumber(redis.call('HGET', KEYS[1], 'crashes') or '0') or 0  -- edited by hand: counts from 0
local new_epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
if status == 'running' and owner ~= '' and owner ~= ARGV[1] then
  crashes = crashes + 1
  redis.call('HSET', KEYS[1], 'crashes', tostring(crashes))
end
if KEYS[4] ~= nil then
  if ARGV[2] ~= '' and ARGV[2] ~= ARGV[1] then
    redis.call('SREM', KEYS[3], ARGV[8])
  end
  if ARGV[1] ~= '' then
    redis.call('SADD', KEYS[4], ARGV[8])
  end
end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
    'at', ARGV[5], 'event', ARGV[6], 'elementKey', '', 'detail', ARGV[7])
end
return {'OK', status, tostring(new_epoch), tostring(crashes)}
