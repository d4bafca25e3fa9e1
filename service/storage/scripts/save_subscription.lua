-- Store a subscription unless it is new and the limit is reached, with its spacing (the least
-- time between two of its webhooks, ms; 0: no rate limit) where the delivery scripts read it.
-- KEYS: the hash, the spacings. ARGV: id, JSON, limit, spacing. Returns 1 if stored.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3])
then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
else redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
