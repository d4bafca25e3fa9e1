-- Write a backfill (`service.storage.reconciliation`) unless it has ended: a walk's late write
-- never undoes a cancel.
-- KEYS: its hash, the line, the history. ARGV: the TTL (s), the step (`new`: it starts, in the
-- line's last place; `progress`; `end`: it leaves the line), its id, now (ms), field, value, ...
local step = ARGV[2]
if step == 'new' then
  redis.call('DEL', KEYS[1])
else
  local status = redis.call('HGET', KEYS[1], 'status')
  if status == 'done' or status == 'failed' or status == 'cancelled' then return status end
  if not status then return 'gone' end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if step == 'new' then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -101)
elseif step == 'end' then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return false
