-- Forget a deleted subscription's deliveries at once (`service.storage.deliveries`): what it
-- had queued and waiting, its attempt window and failed list. Attempts still in flight are
-- dropped when they settle.
-- KEYS: due, in-flight, its pending, queue, attempts and failed keys. ARGV: the subscription,
-- the body key prefix.
local entries = redis.call('HGETALL', KEYS[3])
for i = 1, #entries, 2 do
  local rec, v = entries[i], entries[i + 1]
  if rec ~= '!' then
    local codes = string.match(v, '^([^#@]*)')
    for c = 1, #codes do
      local body = ARGV[2] .. rec .. ':' .. string.sub(codes, c, c)
      if redis.call('HINCRBY', body, 'n', -1) <= 0 then redis.call('DEL', body) end
    end
  end
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return #entries / 2
