-- bulk_owner.lua: a bulk operation's owner changes: adopted from a dead node, let go while paused, or failed.
--
-- adopt: a running job whose owner and epoch are still those the caller saw (compare-and-set: two adopters cannot
-- both win) is owned by ARGV[4] from now on, its epoch moved on, which fences every later write of the old owner.
-- release: the owner (at its epoch) lets a paused job go; a job resumed meanwhile is kept (RUNNING: go on).
-- fail: the owner (at its epoch) ends the job failed, with ARGV[4] as its error.
--
-- KEYS[1] job hash
-- ARGV[1] adopt | release | fail   ARGV[2] expected owner   ARGV[3] expected epoch
-- ARGV[4] the new owner (adopt) or the error (fail)   ARGV[5] now (ISO-8601)
-- Returns {"OK", epoch} | {"RUNNING"} | {"NO", status, owner} | {"MISSING"}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING'}
end
local job = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch')
local status, owner, epoch = job[1] or '', job[2] or '', job[3] or ''
if owner ~= ARGV[2] or epoch ~= ARGV[3] then
  return {'NO', status, owner}
end
local verb = ARGV[1]
if verb == 'adopt' and status == 'running' then
  local next_epoch = (tonumber(epoch) or 0) + 1
  redis.call('HSET', KEYS[1], 'owner', ARGV[4], 'epoch', next_epoch)
  return {'OK', tostring(next_epoch)}
elseif verb == 'release' then
  if status == 'running' then
    return {'RUNNING'}
  end
  redis.call('HSET', KEYS[1], 'owner', '')
  return {'OK', epoch}
elseif verb == 'fail' and (status == 'running' or status == 'paused') then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'error', ARGV[4], 'endedAt', ARGV[5], 'owner', '')
  return {'OK', epoch}
end
return {'NO', status, owner}
