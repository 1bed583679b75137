-- swap_key.lua: set a string key to a new value only if it still holds the value the caller set
-- (compare-and-set), keeping its TTL.
--
-- Used by an idempotent start: it claims its key with a token before it takes an execution id (a repeat that
-- finds the key must not spend one), then puts the id in place of the token, unless its claim has lapsed and
-- another start holds the key now.
-- KEYS[1] the key   ARGV[1] the value the caller set   ARGV[2] the new value
-- Returns 1 if set, 0 otherwise.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
