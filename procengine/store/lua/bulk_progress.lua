-- bulk_progress.lua: record the outcomes of a stretch of a bulk operation's targets and move its cursor, fenced.
--
-- Only the job's owner at the epoch it holds may write: a node that lost the job (its heartbeat lapsed and another
-- node adopted it, bulk_takeover.lua) is refused. An execution whose outcome is recorded already (a stretch applied
-- again after a failover) is neither counted nor listed again, so the counts are exact although an item may be
-- applied twice. The stretch that reaches the end of the targets completes a running job; a job cancelled meanwhile
-- (bulk_steer.lua) is let go here.
--
-- KEYS[1] job hash   KEYS[2] items stream   KEYS[3] seen hash   KEYS[4] paused hash (what a pause paused)
-- ARGV[1] owner   ARGV[2] epoch   ARGV[3] the new cursor   ARGV[4] now (epoch ms)   ARGV[5] now (ISO-8601)
-- ARGV[6] the outcomes, JSON: [[executionID (string), outcome (done|refused|failed), reason, pausedAt], ...]
-- Returns {"OK", status} | {"FENCED", owner, epoch} | {"MISSING"}.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING'}
end
local job = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'status', 'matched', 'cursor', 'endedAt')
if job[1] ~= ARGV[1] or job[2] ~= ARGV[2] then
  return {'FENCED', job[1] or '', job[2] or ''}
end
for _, o in ipairs(cjson.decode(ARGV[6])) do
  local id, outcome, reason, paused_at = o[1], o[2], o[3], o[4]
  if redis.call('HSETNX', KEYS[3], id, outcome) == 1 then
    redis.call('HINCRBY', KEYS[1], outcome, 1)
    local entry = {'e', id, 'o', outcome, 't', ARGV[4]}
    if reason ~= '' then
      entry[#entry + 1] = 'r'
      entry[#entry + 1] = reason
      if outcome == 'refused' then
        redis.call('HINCRBY', KEYS[1], 'refused:' .. reason, 1)
      end
    end
    if paused_at ~= '' then
      redis.call('HSET', KEYS[4], id, paused_at)
    end
    redis.call('XADD', KEYS[2], '*', unpack(entry))
  end
end
local cursor = tonumber(ARGV[3])
if cursor > (tonumber(job[5]) or 0) then
  redis.call('HSET', KEYS[1], 'cursor', cursor)
else
  cursor = tonumber(job[5]) or 0
end
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[5])
local status = job[3]
if status == 'running' and cursor >= (tonumber(job[4]) or 0) then
  status = 'completed'
  redis.call('HSET', KEYS[1], 'status', status, 'endedAt', ARGV[5], 'owner', '')
elseif status == 'cancelled' then
  redis.call('HSET', KEYS[1], 'owner', '')
  if (job[6] or '') == '' then
    redis.call('HSET', KEYS[1], 'endedAt', ARGV[5])
  end
end
return {'OK', status}
