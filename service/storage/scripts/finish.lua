-- A final recording keeps in Redis only what de-duplication and look-ups need: its payloads
-- (Plivo's Recording object, the callback, the events' bodies, the transcription callback) are
-- in the archive by then. It is written with the final status, in one step. KEYS: state,
-- transcription. ARGV: now (ms), the number of event types, the event types, then the final
-- fields as name, value pairs.
-- The hash is written anew: once it held long values Redis keeps it in its large encoding, and
-- what is left fits the compact one (a few hundred bytes instead of over a kilobyte).
local types = tonumber(ARGV[2])
redis.call('HDEL', KEYS[1], 'recording', 'callback')
for i = 3, 2 + types do redis.call('HDEL', KEYS[1], 'event:' .. ARGV[i]) end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'archived_at', ARGV[1], 'updated_at', ARGV[1])
for i = 3 + types, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local ttl = redis.call('PTTL', KEYS[1])
local kept = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(kept))
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
