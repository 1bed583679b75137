-- search.lua: the ids of one filtered list page, read from the tenant's indexes in one round trip (read only).
--
-- Each check is a sorted set of the tenant's slot that a matching execution is in: scored by execution id (a
-- status, process, keyword, bool, word or error type index), or scored by a value that must be in a range (a
-- number's or a time's attribute, the start time). The smallest check drives (ZCARD; ZCOUNT for a range): its ids
-- are read newest first below the cursor, a batch at a time, and every other check is asked for the whole batch
-- with one ZMSCORE. A range check drives only when it is the smallest and holds at most ARGV[5] ids: they are read
-- whole and sorted by id. At most ARGV[4] ids are looked at.
--
-- KEYS[1..n]  the checks' sorted sets (KEYS[1]: the status/process index, scored by id; every key in one slot)
-- ARGV[1]     the cursor: ids strictly below it ("" = from the newest)
-- ARGV[2]     how many ids are wanted
-- ARGV[3]     ids read from the driver at a time
-- ARGV[4]     the most ids looked at
-- ARGV[5]     the most ids of a range check that may drive
-- ARGV[6..]   per check, 5 values: kind ("id" or "range"), low ("" = none), low open ("1"/"0"), high ("" = none),
--             high open ("1"/"0")
--
-- Returns {ids (newest first, at most ARGV[2]), the cursor to go on from ("" = none), more (1 or 0)}: `more` is 1
-- when the indexes may hold further matches below the cursor.

local after = ARGV[1]
local wanted = tonumber(ARGV[2])
local batch = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
local materialize = tonumber(ARGV[5])

local checks = {}
for i = 1, #KEYS do
  local base = 5 + (i - 1) * 5
  local low, high = ARGV[base + 2], ARGV[base + 4]
  checks[i] = {
    key = KEYS[i],
    by_id = ARGV[base + 1] == 'id',
    low = low ~= '' and tonumber(low) or nil,
    low_open = ARGV[base + 3] == '1',
    high = high ~= '' and tonumber(high) or nil,
    high_open = ARGV[base + 5] == '1',
    low_text = low == '' and '-inf' or ((ARGV[base + 3] == '1' and '(' or '') .. low),
    high_text = high == '' and '+inf' or ((ARGV[base + 5] == '1' and '(' or '') .. high),
  }
end

local function admits(check, score)
  if not score then
    return false
  end
  if check.by_id then
    return true
  end
  local value = tonumber(score)
  if check.low then
    if check.low_open and value <= check.low or (not check.low_open) and value < check.low then
      return false
    end
  end
  if check.high then
    if check.high_open and value >= check.high or (not check.high_open) and value > check.high then
      return false
    end
  end
  return true
end

-- the sizes: the smallest set scored by id drives, or a smaller range check that may be read whole
local driver = nil
for i, check in ipairs(checks) do
  if check.by_id then
    check.size = redis.call('ZCARD', check.key)
  else
    check.size = redis.call('ZCOUNT', check.key, check.low_text, check.high_text)
  end
  if check.size == 0 then
    return {{}, '', 0}
  end
  if check.by_id and (driver == nil or check.size < checks[driver].size) then
    driver = i
  end
end
for i, check in ipairs(checks) do
  if not check.by_id and check.size <= materialize and check.size < checks[driver].size then
    driver = i
  end
end

local others = {}
for i, check in ipairs(checks) do
  if i ~= driver then
    others[#others + 1] = check
  end
end

-- a range check that drives: its ids, newest first, below the cursor
local materialized = nil
if not checks[driver].by_id then
  local check = checks[driver]
  local members = redis.call('ZRANGEBYSCORE', check.key, check.low_text, check.high_text)
  materialized = {}
  local below = after ~= '' and tonumber(after) or nil
  for _, member in ipairs(members) do
    local id = tonumber(member)
    if below == nil or id < below then
      materialized[#materialized + 1] = {id, member} -- the member as it is: tostring would write 1e+15
    end
  end
  table.sort(materialized, function(a, b) return a[1] > b[1] end)
end

local found = {}
local cursor = after
local position = 0
while budget > 0 do
  local ids = {}
  local exhausted
  if materialized then
    for i = position + 1, math.min(position + batch, #materialized) do
      ids[#ids + 1] = materialized[i][2]
    end
    position = position + #ids
    exhausted = position >= #materialized
  else
    local top = cursor ~= '' and ('(' .. cursor) or '+inf'
    ids = redis.call('ZREVRANGEBYSCORE', checks[driver].key, top, '-inf', 'LIMIT', 0, batch)
    exhausted = #ids < batch
  end
  if #ids == 0 then
    return {found, cursor, 0}
  end
  budget = budget - #ids
  local kept = {}
  for n = 1, #ids do
    kept[n] = true
  end
  for _, check in ipairs(others) do
    local scores = redis.call('ZMSCORE', check.key, unpack(ids))
    for n = 1, #ids do
      if kept[n] and not admits(check, scores[n]) then
        kept[n] = false
      end
    end
  end
  for n = 1, #ids do
    if kept[n] then
      if #found == wanted then
        return {found, found[#found], 1} -- one more matches: the page is full, and more come
      end
      found[#found + 1] = ids[n]
    end
  end
  cursor = ids[#ids]
  if exhausted then
    return {found, cursor, 0}
  end
  if #found == wanted then
    return {found, cursor, 1}
  end
end
return {found, cursor, 1}
