-- register_process.lua: register a definition under its key, as a new version unless it is unchanged.
--
-- KEYS[1] process-key hash (latestID, latestVersion, latestHash, topVersion)
-- KEYS[2] the tenant's processes sorted set
-- KEYS[3] the process id counter, when the script takes the id itself (one Redis, Sentinel); absent on a
--         Redis Cluster, where it lives in another slot and the caller takes the id first
-- ARGV[1] the new process id ("" when KEYS[3] is given)   ARGV[2] body hash   ARGV[3] the new process hash's key
--         without its id (the id is appended)   ARGV[4..] field pairs of the new process hash (the script adds
--         `version`)
-- Returns {process id, version, 1 if created else 0}, or the error of a write Redis refused. An unchanged body
-- takes no id from the counter.
--
-- The process hash's name is given whole but for its id, which only the script knows when it takes it: it
-- carries the same hash tag as KEYS[1] (the tenant's), so it is in this script's slot.
--
-- A new version is numbered after the highest ever given under the key (`topVersion`, written by this script and
-- by delete_process.lua), not after the latest left: the number of a deleted version is never given again.

-- Every write is a pcall whose refusal (OOM, a counter at its maximum, an ACL without the command) is returned as
-- the script's answer, as that command's own error would be, so that the caller reads its kind from its prefix
-- (redis.call would wrap it in "Error running script", and a raised error table is not kept by every version).
local function refused(reply)
  if type(reply) == 'table' and reply.err ~= nil then
    reply.err = string.gsub(reply.err, '^@user_script:%s*%d+:%s*%-', '')  -- where in the script: not the news
    return true
  end
  return false
end

local latest = redis.call('HMGET', KEYS[1], 'latestID', 'latestVersion', 'latestHash', 'topVersion')
if latest[1] and latest[3] == ARGV[2] then
  return {tonumber(latest[1]), tonumber(latest[2]), 0}
end
local id = ARGV[1]
if KEYS[3] then
  local taken = redis.pcall('INCRBY', KEYS[3], 1)
  if refused(taken) then return taken end
  id = tostring(taken)
end
local version = math.max(tonumber(latest[2]) or 0, tonumber(latest[4]) or 0) + 1
local reply = redis.pcall('HSET', ARGV[3] .. id, 'version', version, unpack(ARGV, 4))
if refused(reply) then return reply end
reply = redis.pcall('HSET', KEYS[1], 'latestID', id, 'latestVersion', version, 'latestHash', ARGV[2],
  'topVersion', version)
if refused(reply) then return reply end
reply = redis.pcall('ZADD', KEYS[2], tonumber(id), id)
if refused(reply) then return reply end
return {tonumber(id), version, 1}
