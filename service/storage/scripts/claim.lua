-- KEYS: due, leased, subscriptions. ARGV: now (ms), limit, lease (ms), slots per subscriber,
-- put-off (ms), then the key prefixes of deliveries, outboxes, slots and waiting lists.
-- Returns when the dispatcher should look again (ms: the earliest due delivery or lapsing
-- lease; 0 if neither), then [member, recording_id, body, type, attempts, subscription JSON,
-- queued at (epoch s)] for each delivery claimed.
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, capacity, put_off = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local DELIVERY, OUTBOX, SLOTS, WAITING = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZADD', KEYS[1], now, member)
end
local claimed = {0}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit * 4)
for _, member in ipairs(due) do
  if #claimed > limit then break end
  local colon = string.find(member, ':', 1, true)
  local sub_id, msg_id = string.sub(member, 1, colon - 1), string.sub(member, colon + 1)
  local d = redis.call('HMGET', DELIVERY .. member,
                       'status', 'recording_id', 'body', 'type', 'attempts', 'created_at')
  if d[1] ~= 'pending' then
    redis.call('ZREM', KEYS[1], member)
  else
    local head = redis.call('ZRANGE', OUTBOX .. sub_id .. ':' .. d[2], 0, 0)[1]
    local slots, waiting = SLOTS .. sub_id, WAITING .. sub_id
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
    if head and head ~= msg_id then
      redis.call('ZADD', KEYS[1], now + put_off, member)
    elseif redis.call('ZCARD', slots) >= capacity then
      redis.call('ZADD', waiting, 'NX', now, member)
      redis.call('ZADD', KEYS[1], now + put_off, member)
    else
      redis.call('ZADD', slots, now + lease, member)
      redis.call('ZREM', waiting, member)
      redis.call('ZREM', KEYS[1], member)
      redis.call('ZADD', KEYS[2], now + lease, member)
      local subscription = redis.call('HGET', KEYS[3], sub_id) or ''
      claimed[#claimed + 1] = {member, d[2], d[3], d[4], d[5] or '0', subscription, d[6] or '0'}
    end
  end
end
local next_due = nil
for _, zset in ipairs({KEYS[1], KEYS[2]}) do
  local first = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')[2]
  if first and (next_due == nil or tonumber(first) < next_due) then next_due = tonumber(first) end
end
claimed[1] = next_due or 0
return claimed
