-- register_process.lua: register a definition under its key, as a new version unless it is unchanged.
--
-- KEYS[1] process-key hash (latestID, latestVersion, latestHash)   KEYS[2] new process hash
-- KEYS[3] tenant's processes sorted set
-- ARGV[1] new process id   ARGV[2] body hash   ARGV[3..] field pairs of the new process hash
--         (the script adds `version`)
-- Returns {process id, version, 1 if created else 0}.

local latest = redis.call('HMGET', KEYS[1], 'latestID', 'latestVersion', 'latestHash')
if latest[3] == ARGV[2] then
  return {tonumber(latest[1]), tonumber(latest[2]), 0}
end
local version = (tonumber(latest[2]) or 0) + 1
redis.call('HSET', KEYS[2], 'version', version, unpack(ARGV, 3))
redis.call('HSET', KEYS[1], 'latestID', ARGV[1], 'latestVersion', version, 'latestHash', ARGV[2])
redis.call('ZADD', KEYS[3], tonumber(ARGV[1]), ARGV[1])
return {tonumber(ARGV[1]), version, 1}
