-- Queue a job unless it is queued or running already, arq's rule (`service.storage.jobs`).
-- KEYS: arq's queue, the job's key, a key whose presence makes the job due at once ('' for
-- none: a transcription callback that came before its collector was queued). ARGV: the job id,
-- the encoded job, now (ms), due at (ms), the job key's time to live (ms), the jobs' wake-up
-- channel. Returns 1 if it was queued now, 0 if it was there already.
local now, due = tonumber(ARGV[3]), tonumber(ARGV[4])
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then due = now end
if not redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[5], 'NX') then
  -- Queued already, unless a lost connection left its key without its place in the queue.
  redis.call('ZADD', KEYS[1], 'NX', due, ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'NX', due, ARGV[1])
if due <= now then redis.call('PUBLISH', ARGV[6], 1) end
return 1
