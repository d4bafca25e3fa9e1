-- End a job run as arq's `finish_job` does (`service.storage.jobs`), for a relay that keeps no
-- results and aborts no jobs. KEYS: arq's queue, the job's in-progress, retry and job keys.
-- ARGV: the job id, `finish` (done for good) or `retry` with the score to add (ms), or
-- `release` (only its lock: arq runs it again).
if ARGV[2] == 'finish' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
elseif ARGV[2] == 'retry' then
  redis.call('ZINCRBY', KEYS[1], ARGV[3], ARGV[1])
  redis.call('DEL', KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
return 1
