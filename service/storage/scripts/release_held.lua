-- Make due again what a worker held in flight (`service.storage.deliveries`): its own on a clean
-- shutdown (the attempts it cut short), or a dead worker's (no heartbeat for a lapse: `claim`
-- names them), and forget the worker. KEYS: due, in-flight, the workers' heartbeats.
-- ARGV: now (ms), the worker, the pending and queue key prefixes. Returns how many it released.
local now, holder, PENDING, QUEUE = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local released = 0
local flying = redis.call('HGETALL', KEYS[2])
for i = 1, #flying, 2 do
  local sub = flying[i]
  if tonumber(flying[i + 1]) > 0 then
    local entries = redis.call('HGETALL', PENDING .. sub)
    for j = 1, #entries, 2 do
      local rec, v = entries[j], entries[j + 1]
      local kept, by = string.match(v, '^([^@]*)@(.*)$')
      if by == holder then
        redis.call('HSET', PENDING .. sub, rec, kept)
        redis.call('HINCRBY', KEYS[2], sub, -1)
        redis.call('ZADD', QUEUE .. sub, now, rec)
        redis.call('ZADD', KEYS[1], 'LT', now, sub)
        released = released + 1
      end
    end
  end
end
redis.call('ZREM', KEYS[3], holder)
return released
