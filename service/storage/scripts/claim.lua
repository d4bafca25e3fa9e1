-- Take up to `limit` due deliveries (`service.storage.deliveries`), in one step.
-- A rate-limited subscription (its spacing in KEYS[5]) gives one delivery when its pace
-- (KEYS[6]) has come, and its pace moves on by its spacing: evenly spaced, whichever worker
-- claims. A claim late by up to a quarter of the spacing keeps the schedule (no drift below
-- the rate); later, the schedule starts again from now (no burst to catch up).
-- KEYS: due, in-flight, subscriptions, the workers' heartbeats, spacings, paces.
-- ARGV: now (ms), limit, slots
-- per subscriber, put-off (ms), the pending, queue and body key prefixes, the caller's name
-- (it holds what it takes: `code@holder`), and when a worker's last heartbeat makes it dead
-- (epoch s: what it held is released, `release_held.lua`).
-- Returns when to look again (ms: the earliest due subscription; 0 if none), a dead worker
-- ('' if none), then for each delivery taken: subscription, recording, event code, attempts
-- made, body, queued at (epoch s), the recording's archive day, the subscription's JSON (''
-- if deleted).
local now, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local capacity, put_off = tonumber(ARGV[3]), tonumber(ARGV[4])
local PENDING, QUEUE, BODY, holder = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[9], 'LIMIT', 0, 1)[1]
local claimed, taken = {0, dead or ''}, 0
for _, sub in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)) do
  if taken >= limit then break end
  local queue, pending = QUEUE .. sub, PENDING .. sub
  local slots = capacity - tonumber(redis.call('HGET', KEYS[2], sub) or '0')
  local room = math.min(slots, limit - taken)
  local spacing = tonumber(redis.call('HGET', KEYS[5], sub) or '0')
  local pace = 0
  if spacing > 0 then
    pace = tonumber(redis.call('HGET', KEYS[6], sub) or '0')
    if pace > now then room = 0 else room = math.min(room, 1) end
  end
  local subscription = nil
  if room > 0 then
    for _, rec in ipairs(redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'LIMIT', 0, room)) do
      redis.call('ZREM', queue, rec)
      local v = redis.call('HGET', pending, rec)
      if v then
        local code, tries = string.match(v, '^(.)[^#@]*#?(%d*)')
        redis.call('HSET', pending, rec, v .. '@' .. holder)
        redis.call('HINCRBY', KEYS[2], sub, 1)
        local body = redis.call('HMGET', BODY .. rec .. ':' .. code, 'b', 't', 'd')
        subscription = subscription or redis.call('HGET', KEYS[3], sub) or ''
        claimed[#claimed + 1] = {sub, rec, code, tries, body[1] or '', body[2] or '0',
                                 body[3] or '', subscription}
        taken, slots = taken + 1, slots - 1
        if spacing > 0 then
          if pace < now - spacing / 4 then pace = now end  -- a new schedule, from now
          pace = pace + spacing
          redis.call('HSET', KEYS[6], sub, pace)
        end
      end
    end
  end
  local first = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
  if not first[1] then
    redis.call('ZREM', KEYS[1], sub)
  elseif tonumber(first[2]) <= now and slots <= 0 then
    -- Due, but its slots are full: the settle that frees one wakes it (`ZADD XX LT`).
    redis.call('ZADD', KEYS[1], now + put_off, sub)
  else  -- when its next is due, and a rate-limited one's pace allows it
    redis.call('ZADD', KEYS[1], math.max(tonumber(first[2]), pace), sub)
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
claimed[1] = tonumber(first or 0)
return claimed
