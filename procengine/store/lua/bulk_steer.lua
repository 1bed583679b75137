-- bulk_steer.lua: pause, resume or cancel a bulk operation (any node may: it is not the owner's progress).
--
-- pause: running -> paused; the owner sees it in its next progress write and lets the job go (bulk_release.lua),
-- so that a paused job costs no node anything. resume: paused -> running; a job nobody owns any more is taken
-- here by ARGV[2] (its epoch moves on), and the caller starts its runner. cancel: running or paused -> cancelled;
-- a job nobody owns ends here, an owned one when its owner next writes.
--
-- KEYS[1] job hash
-- ARGV[1] pause | resume | cancel   ARGV[2] the node asking (the new owner of a resumed job nobody owns)
-- ARGV[3] now (ISO-8601)
-- Returns {"OK", status, "1" if ARGV[2] now runs it else "0", epoch} | {"CONFLICT", status} | {"MISSING"}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING'}
end
local job = redis.call('HMGET', KEYS[1], 'status', 'owner', 'epoch')
local status, owner, epoch = job[1], job[2] or '', tonumber(job[3]) or 0
local verb = ARGV[1]
if verb == 'pause' and status == 'running' then
  redis.call('HSET', KEYS[1], 'status', 'paused', 'updatedAt', ARGV[3])
  return {'OK', 'paused', '0', tostring(epoch)}
elseif verb == 'resume' and status == 'paused' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'updatedAt', ARGV[3])
  if owner == '' then
    epoch = epoch + 1
    redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'epoch', epoch)
    return {'OK', 'running', '1', tostring(epoch)}
  end
  return {'OK', 'running', '0', tostring(epoch)}
elseif verb == 'cancel' and (status == 'running' or status == 'paused') then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'updatedAt', ARGV[3])
  if owner == '' then
    redis.call('HSET', KEYS[1], 'endedAt', ARGV[3])
  end
  return {'OK', 'cancelled', '0', tostring(epoch)}
end
return {'CONFLICT', status}
