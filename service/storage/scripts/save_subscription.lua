-- Store a subscription unless it is new and the limit is reached. KEYS: the hash. ARGV: id,
-- JSON, limit. Returns 1 if stored.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3])
then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
