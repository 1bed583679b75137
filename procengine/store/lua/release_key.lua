-- release_key.lua: delete a string key only if it still holds the value the caller set (compare-and-delete).
--
-- Used to give up an idempotency key when the start that claimed it failed, without removing a key that
-- another start has since claimed.
-- KEYS[1] the key   ARGV[1] the value the caller set
-- Returns 1 if deleted, 0 otherwise.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
