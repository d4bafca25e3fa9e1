-- KEYS: due, leased, delivery, subscriber's attempt log, recording's attempt log, failed,
-- failing-since, subscriptions. ARGV: member, outcome (succeeded | failed | retry | dropped),
-- now (ms), retry at (ms), error, attempt (JSON), log length, retention (s), "1" if the attempt
-- was a failure of the subscriber's (it starts a run of failures, if none is running), then
-- the key prefixes of outboxes, slots and waiting lists. A
-- delivery that succeeded is deleted (the attempt logs keep its outcome); one that failed is
-- kept, without its body (in the archive), for recover, as long as the recording's state, and
-- so are the recording's attempt log and the failed list.
-- A delivery whose subscription is gone (deleted, perhaps while this attempt was in flight) is
-- dropped: nothing is kept, so nothing of a deleted subscription comes back. Returns 2 then.
local member, outcome, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local OUTBOX, SLOTS, WAITING = ARGV[10], ARGV[11], ARGV[12]
local colon = string.find(member, ':', 1, true)
local sub_id, msg_id = string.sub(member, 1, colon - 1), string.sub(member, colon + 1)
redis.call('ZREM', KEYS[2], member)
redis.call('ZREM', SLOTS .. sub_id, member)
local woken = redis.call('ZPOPMIN', WAITING .. sub_id)
if woken[1] then redis.call('ZADD', KEYS[1], now, woken[1]) end
if outcome == 'dropped' or redis.call('HEXISTS', KEYS[8], sub_id) == 0 then
  local recording = redis.call('HGET', KEYS[3], 'recording_id')
  redis.call('DEL', KEYS[3])
  if recording then
    local outbox = OUTBOX .. sub_id .. ':' .. recording
    redis.call('ZREM', outbox, msg_id)
    local following = redis.call('ZRANGE', outbox, 0, 0)[1]
    if following then redis.call('ZADD', KEYS[1], now, sub_id .. ':' .. following) end
  end
  return 2
end
local retention = tonumber(ARGV[8])
for _, log in ipairs({KEYS[4], KEYS[5]}) do
  redis.call('RPUSH', log, ARGV[6])
  redis.call('LTRIM', log, -tonumber(ARGV[7]), -1)
end
redis.call('EXPIRE', KEYS[5], retention)
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
if ARGV[5] ~= '' then redis.call('HSET', KEYS[3], 'last_error', ARGV[5]) end
if ARGV[9] == '1' then redis.call('SET', KEYS[7], now / 1000, 'NX') end
if outcome == 'retry' then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[4]), member)
  return 0
end
local recording = redis.call('HGET', KEYS[3], 'recording_id')
if outcome == 'succeeded' then
  -- Delivered: the attempt logs say so, and nothing else needs the delivery any more.
  redis.call('DEL', KEYS[3], KEYS[7])
else
  redis.call('HSET', KEYS[3], 'status', outcome, 'finished_at', now / 1000)
  redis.call('EXPIRE', KEYS[3], retention)
  -- A recording event's body is in the archive, where recover reads it.
  if string.sub(redis.call('HGET', KEYS[3], 'type') or '', 1, 10) == 'recording.' then
    redis.call('HDEL', KEYS[3], 'body')
  end
  redis.call('ZADD', KEYS[6], now / 1000, KEYS[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now / 1000 - retention)
end
local outbox = OUTBOX .. sub_id .. ':' .. recording
redis.call('ZREM', outbox, msg_id)
local following = redis.call('ZRANGE', outbox, 0, 0)[1]
if following then redis.call('ZADD', KEYS[1], now, sub_id .. ':' .. following) end
return 1
