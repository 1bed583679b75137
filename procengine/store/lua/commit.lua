-- commit.lua: the one atomic write of an execution (create, checkpoint, transition, release).
--
-- Checks first, then writes (a script does not roll back): the writer's fencing epoch must equal
-- the execution's, and the execution's status must be one of the expected ones.
--
-- KEYS[1] execution hash   KEYS[2] state hash   KEYS[3] elements hash
-- KEYS[4] threads hash     KEYS[5] log stream
-- ARGV[1] epoch the writer holds ("" = do not check)
-- ARGV[2] expected statuses, comma separated ("" = any; "-" = the execution must not exist yet)
-- ARGV[3] approximate MAXLEN of the log stream
-- ARGV[4] commit token, unique per write ("" = none): a write whose token is the last one applied is
--         not applied again, so a client retry after a lost reply cannot write twice (recorded only
--         by writes that change execution fields; a log-only write may repeat on a retry)
-- ARGV[5..10] counts: execution field pairs, state field pairs, state fields to delete,
--             element field pairs, thread field pairs, log entries (4 values each: at, event, elementKey, detail)
-- ARGV[11..] the values, in that order
-- Returns {"OK"|"FENCED"|"CONFLICT", status, epoch} as found before the write.

local status = redis.call('HGET', KEYS[1], 'status') or ''
local epoch = redis.call('HGET', KEYS[1], 'epoch') or ''
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'lastCommit') == ARGV[4] then
  return {'OK', status, epoch}
end

if ARGV[2] == '-' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return {'CONFLICT', status, epoch}
  end
else
  if ARGV[1] ~= '' and ARGV[1] ~= epoch then
    return {'FENCED', status, epoch}
  end
  if ARGV[2] ~= '' then
    local allowed = false
    for expected in string.gmatch(ARGV[2], '[^,]+') do
      if expected == status then allowed = true end
    end
    if not allowed then
      return {'CONFLICT', status, epoch}
    end
  end
end

local n_exec, n_state, n_del = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local n_elem, n_thread, n_log = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local i = 11

local function hset_pairs(key, n)
  if n > 0 then
    redis.call('HSET', key, unpack(ARGV, i, i + 2 * n - 1))
    i = i + 2 * n
  end
end

hset_pairs(KEYS[1], n_exec)
if ARGV[4] ~= '' and n_exec > 0 then
  redis.call('HSET', KEYS[1], 'lastCommit', ARGV[4])
end
hset_pairs(KEYS[2], n_state)
if n_del > 0 then
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, i + n_del - 1))
  i = i + n_del
end
hset_pairs(KEYS[3], n_elem)
hset_pairs(KEYS[4], n_thread)
for _ = 1, n_log do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*',
    'at', ARGV[i], 'event', ARGV[i + 1], 'elementKey', ARGV[i + 2], 'detail', ARGV[i + 3])
  i = i + 4
end
return {'OK', status, epoch}
