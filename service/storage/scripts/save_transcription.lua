-- Keep a transcription callback unless the recording belongs to another account than the one
-- that signed it; wake the recording's collector if it waits (`ZADD XX`: only if queued).
-- KEYS: state, transcription, arq queue. ARGV: callback JSON, signer, retention (s), collector
-- job id, now (ms), the jobs' wake-up channel (published if the collector was moved).
-- Returns the owner's auth id when it refuses, else "". A final recording takes no more
-- (a late callback, or a repeat), nor does an erased one: nothing is kept.
local state = redis.call('HMGET', KEYS[1], 'auth_id', 'archived_at', 'status')
local owner = state[1]
if state[2] or state[3] == 'erased' then return '' end
if owner and owner ~= ARGV[2] then return owner end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
if redis.call('ZADD', KEYS[3], 'XX', 'CH', ARGV[5], ARGV[4]) == 1 then
  redis.call('PUBLISH', ARGV[6], 1)
end
return ''
