-- deprecate_process.lua: mark one version of a definition deprecated (it takes no new start) or not.
--
-- KEYS[1] the version's process hash
-- ARGV[1] "1" deprecated, "0" not
-- Returns 1, or 0 when there is no such version (nothing is written: a deleted version is not made again as a
-- hash holding only this field).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'deprecated', ARGV[1])
return 1
