-- commit.lua: the one atomic write of an execution (create, checkpoint, transition, release).
--
-- Checks first, then writes (a script does not roll back): the writer's fencing epoch must equal
-- the execution's, and the execution's status must be one of the expected ones.
--
-- KEYS[1] execution hash   KEYS[2] state hash   KEYS[3] elements hash
-- KEYS[4] threads hash     KEYS[5] log stream       KEYS[6] checkpoint history list
-- KEYS[7..] tenant index keys, one per index edit
-- ARGV[1] epoch the writer holds ("" = do not check)
-- ARGV[2] expected statuses, comma separated ("" = any; "-" = the execution must not exist yet)
-- ARGV[3] approximate MAXLEN of the log stream
-- ARGV[4] commit token, unique per write ("" = none): a write whose token is the last one applied is
--         not applied again, so a client retry after a lost reply cannot write twice. Recorded by every
--         write that changes execution fields, which every write of the state does (a checkpoint writes the
--         counters), so takeover.lua can tell that the state a node loaded is still the latest; a log-only
--         write (a refusal, which needs no epoch) leaves it, and may repeat on a retry.
-- ARGV[5] the writes, one msgpack array (one argument instead of dozens: the client's cost is per
--         argument): {execution field/value list, state field/value list, state fields to delete,
--                    element field/value list, thread field/value list,
--                    log entries as {at (epoch ms), event, elementKey, detail}, compact log (1 or 0)};
--         every value a string. Compact log: rewrite the log stream with DUMP and RESTORE, which stores
--         it at its exact size (XADD preallocates stream-node-max-bytes, 4 KiB by default, for the newest
--         node); only for logs of up to 256 entries, where that slack is most of the key; skipped where
--         the ACL denies DUMP or RESTORE; then, 8th, an expiry in milliseconds (0: none) put on all five keys:
--         the final write of an execution sets its retention (see docs/operations.md); -1: PERSIST all five
--         keys instead (a retry makes a failed execution live again: its retention no longer applies); then, 9th, the
--         tenant index edits {command, arg, ...} (ZADD score member, ZREM member, PEXPIREAT ms, PERSIST, and XADD
--         MAXLEN ~ n * field value ...: the status event), the i-th on KEYS[6 + i]: a status change moves the
--         execution between the tenant's indexes, and is told on its status-events stream, in this same write
--         (only where one script may touch both slots; on a Redis Cluster the client sends them beside it);
--         absent when there are none (an empty list when a 10th follows); then, 10th, the checkpoint history
--         {most entries, most bytes, elementKey}: a write that carries the stack and the memory also appends
--         them, with a sequence number and the thread records, to the history list as one msgpack entry
--         {seq, savedAt, elementKey, stack, memory, {thread field, value, ...}}, and drops its oldest entries
--         past either bound; the list's first element is its counters {last seq, bytes of the entries}; an
--         entry bigger than the whole byte budget is not kept; absent: no history
-- ARGV[6] not after ("" = no deadline): epoch milliseconds by this server's clock; past it the write is not
--         applied (EXPIRED). A command forwarded from another node carries its requester's deadline here, so a
--         command whose requester has given up never takes effect.

-- Returns {"OK"|"FENCED"|"CONFLICT"|"EXPIRED", status, epoch} as found before the write.

-- one read for the three fields the checks need (a missing field reads as false)
local found = redis.call('HMGET', KEYS[1], 'status', 'epoch', 'lastCommit')
local status = found[1] or ''
local epoch = found[2] or ''
if ARGV[4] ~= '' and found[3] == ARGV[4] then
  return {'OK', status, epoch}
end

if ARGV[6] ~= nil and ARGV[6] ~= '' then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[6]) then
    return {'EXPIRED', status, epoch}
  end
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

local writes = cmsgpack.unpack(ARGV[5])
local execution, state, deleted, elements, threads, log = writes[1], writes[2], writes[3], writes[4], writes[5], writes[6]

if #execution > 0 then
  if ARGV[4] ~= '' then  -- the token in the same HSET as the fields
    execution[#execution + 1] = 'lastCommit'
    execution[#execution + 1] = ARGV[4]
  end
  redis.call('HSET', KEYS[1], unpack(execution))
end
if #state > 0 then
  redis.call('HSET', KEYS[2], unpack(state))
end
if #deleted > 0 then
  redis.call('HDEL', KEYS[2], unpack(deleted))
end
if #elements > 0 then
  redis.call('HSET', KEYS[3], unpack(elements))
end
if #threads > 0 then
  redis.call('HSET', KEYS[4], unpack(threads))
end
for _, entry in ipairs(log) do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[3], '*',
    'at', entry[1], 'event', entry[2], 'elementKey', entry[3], 'detail', entry[4])
end
if writes[7] == 1 and redis.call('XLEN', KEYS[5]) <= 256 then
  -- best effort, after the writes: pcall, so that a Redis whose ACL denies DUMP or RESTORE (@dangerous)
  -- only skips the rewrite instead of failing a script that has already written
  local dumped = redis.pcall('DUMP', KEYS[5])
  if type(dumped) == 'string' then
    redis.pcall('RESTORE', KEYS[5], 0, dumped, 'REPLACE')
  end
end
local history = writes[10]
if history ~= nil and #state > 0 then
  local stack, memory, saved_at
  for i = 1, #state, 2 do
    if state[i] == 'stack' then stack = state[i + 1]
    elseif state[i] == 'memory' then memory = state[i + 1]
    elseif state[i] == 'savedAt' then saved_at = state[i + 1] end
  end
  if stack ~= nil and memory ~= nil then
    -- the list's head is its own counters {seq, bytes}: the execution hash stays as small as it was
    local seq, bytes = 0, 0
    local head = redis.call('LINDEX', KEYS[6], 0)
    if head then
      local ok, counters = pcall(cmsgpack.unpack, head)
      if ok and type(counters) == 'table' and #counters == 2 then
        seq, bytes = counters[1], counters[2]
        redis.call('LPOP', KEYS[6])
      end
    end
    seq = seq + 1
    local entry = cmsgpack.pack({seq, saved_at or '', history[3], stack, memory, threads})
    if #entry <= history[2] then
      redis.call('RPUSH', KEYS[6], entry)
      bytes = bytes + #entry
      local count = redis.call('LLEN', KEYS[6])
      while count > history[1] or bytes > history[2] do
        local oldest = redis.call('LPOP', KEYS[6])
        bytes = bytes - #oldest
        count = count - 1
      end
    end
    redis.call('LPUSH', KEYS[6], cmsgpack.pack({seq, bytes}))
  end
end
if writes[8] ~= nil and writes[8] > 0 then
  for i = 1, 6 do
    redis.call('PEXPIRE', KEYS[i], writes[8])
  end
elseif writes[8] ~= nil and writes[8] < 0 then
  for i = 1, 6 do
    redis.call('PERSIST', KEYS[i])
  end
end
local edits = writes[9]
if edits ~= nil then
  for i, edit in ipairs(edits) do
    redis.call(edit[1], KEYS[6 + i], unpack(edit, 2))
  end
end
return {'OK', status, epoch}
