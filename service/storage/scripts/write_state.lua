-- A pipeline's write to a recording's state, unless the recording is erased (its tombstone
-- takes no more: an erasure wins over whatever the pipeline was doing).
-- KEYS: the state. ARGV: `hset` and field, value pairs (returns 1), or `hsetnx`, a field and a
-- value (returns the value the field holds after). Returns false for an erased recording.
if redis.call('HGET', KEYS[1], 'status') == 'erased' then return false end
if ARGV[1] == 'hsetnx' then
  redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
  return redis.call('HGET', KEYS[1], ARGV[2])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
