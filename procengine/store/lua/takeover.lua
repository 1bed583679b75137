-- takeover.lua: make a node the owner of an execution, bumping the fencing epoch.
--
-- Succeeds only if the owner and epoch are still those the caller saw (compare-and-set), so two nodes
-- adopting at once cannot both win; every later write of the old owner is then refused by commit.lua. With
-- ARGV[8], also only if the last write is still the one the caller saw: an owner whose heartbeat lapsed may
-- still write between another node's load and its takeover, and that node would go on from a stale state
-- (an element completed twice).
--
-- KEYS[1] execution hash   KEYS[2] log stream
-- ARGV[1] new owner   ARGV[2] expected owner ("" = none)   ARGV[3] expected epoch
-- ARGV[4] approximate MAXLEN of the log   ARGV[5] log time   ARGV[6] log event ("" = write none)
-- ARGV[7] log detail   ARGV[8] the lastCommit the caller loaded (absent: not checked; "" = none yet)
-- Returns {"OK", status, new epoch} | {"CONFLICT", owner, epoch} | {"MISSING", "", ""}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING', '', ''}
end
local owner = redis.call('HGET', KEYS[1], 'owner') or ''
local epoch = redis.call('HGET', KEYS[1], 'epoch') or '0'
if owner ~= ARGV[2] or epoch ~= ARGV[3] then
  return {'CONFLICT', owner, epoch}
end
if ARGV[8] ~= nil and (redis.call('HGET', KEYS[1], 'lastCommit') or '') ~= ARGV[8] then
  return {'CONFLICT', owner, epoch}
end
local new_epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*',
    'at', ARGV[5], 'event', ARGV[6], 'elementKey', '', 'detail', ARGV[7])
end
return {'OK', redis.call('HGET', KEYS[1], 'status') or '', tostring(new_epoch)}
