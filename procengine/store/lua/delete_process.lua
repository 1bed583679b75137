-- delete_process.lua: delete one version of a definition that no stored execution uses.
--
-- KEYS[1] the version's process hash   KEYS[2] its process-key hash (latestID, latestVersion, latestHash,
-- topVersion)   KEYS[3] the tenant's processes sorted set   KEYS[4] the tenant's index of the executions of this
-- version (`Keys.process_index`)
-- ARGV[1] the process id   ARGV[2] the key the caller read in the process hash   ARGV[3] a process hash's key
--         without its id (`Keys.process_stem`: the other versions' hashes, in the tenant's slot like KEYS)
-- Returns {'missing'} (no such version, or no longer under that key), {'used', executions} (refused: that many
-- executions of the version are stored), or {'deleted', the key's latest processID now or 0 when none is left}.
--
-- All or nothing: the checks first, then the one write that may be refused for memory (the process-key hash),
-- then the removals. Deleting the key's latest version makes the highest version left its latest; `topVersion`
-- keeps the highest number ever given, so register_process.lua never numbers a new version like a deleted one.
-- Finding the version left reads the tenant's versions: O(versions of the tenant), for a rare operator's act.

if redis.call('HGET', KEYS[1], 'key') ~= ARGV[2] then
  return {'missing'}
end
local used = redis.call('ZCARD', KEYS[4])
if used > 0 then
  return {'used', used}
end
local version = tonumber(redis.call('HGET', KEYS[1], 'version')) or 0
local latest = redis.call('HMGET', KEYS[2], 'latestID', 'latestVersion', 'topVersion')
local top = math.max(tonumber(latest[2]) or 0, tonumber(latest[3]) or 0, version)
local now_latest = tonumber(latest[1]) or 0
if latest[1] == ARGV[1] then
  now_latest = 0
  local best_version, best_hash = 0, nil
  for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    if id ~= ARGV[1] then
      local other = redis.call('HMGET', ARGV[3] .. id, 'key', 'version', 'hash')
      local other_version = tonumber(other[2]) or 0
      if other[1] == ARGV[2] and other_version > best_version then
        now_latest, best_version, best_hash = tonumber(id), other_version, other[3]
      end
    end
  end
  if now_latest > 0 then
    redis.call('HSET', KEYS[2], 'latestID', now_latest, 'latestVersion', best_version, 'latestHash',
      best_hash or '', 'topVersion', top)
  else
    redis.call('HSET', KEYS[2], 'topVersion', top)
    redis.call('HDEL', KEYS[2], 'latestID', 'latestVersion', 'latestHash')
  end
else
  redis.call('HSET', KEYS[2], 'topVersion', top)
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return {'deleted', now_latest}
