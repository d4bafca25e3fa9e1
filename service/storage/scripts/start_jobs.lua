-- Lock the due jobs no worker runs, as arq's `start_jobs` does one by one with WATCH and MULTI
-- (`service.storage.jobs`). KEYS: arq's queue. ARGV: now (ms), the lock's time (ms), arq's
-- in-progress key prefix, then the job ids. Returns each job locked here and its score.
local now, lock_ms, prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local started = {}
for i = 4, #ARGV do
  local job = ARGV[i]
  if redis.call('EXISTS', prefix .. job) == 0 then
    local score = redis.call('ZSCORE', KEYS[1], job)
    if score and tonumber(score) <= now then
      redis.call('PSETEX', prefix .. job, lock_ms, '1')
      started[#started + 1] = {job, score}
    end
  end
end
return started
