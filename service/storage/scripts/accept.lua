-- One call accepts a batch of callbacks, in order (see `service.storage.batch`).
-- KEYS: the arq queue, the recordings' index, then three keys a callback: state, callback log,
-- arq job. ARGV: now (ms), retention (s), log cap, job TTL (ms), the jobs' wake-up
-- channel (published once if a job was queued), '1' to trim the index of recordings past the
-- retention (a call a minute is enough), then six a callback: the callback's JSON, "1"
-- if it starts the pipeline, the encoded arq job, the job id, the signing account, the
-- recording id.
-- An erased recording takes nothing (`erased`): not even its callback is logged.
-- Each callback runs under its own `pcall`: one that fails is reported as `failed: <error>`
-- and changes neither the answer nor the fate of the others in the batch.
local jobs, index = KEYS[1], KEYS[2]
local now, retention, log_max, job_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local queued = 0
local function accept(state, log, job, callback, starts, encoded, job_id, auth_id, id)
  if redis.call('HGET', state, 'status') == 'erased' then return 'erased' end
  if starts == '1' then
    if redis.call('HSETNX', state, 'accepted_at', now) == 1 then
      redis.call('HSET', state, 'status', 'queued', 'callback', callback, 'auth_id', auth_id,
                 'updated_at', now)
      redis.call('EXPIRE', state, retention)
      redis.call('ZADD', index, now, id)
      -- Its first claim: no job of its own can be there (arq keeps no results, and a job's
      -- key lapses in a day, within any retention of its recording's state).
      redis.call('PSETEX', job, job_ttl, encoded)
      redis.call('ZADD', jobs, now, job_id)
      queued = queued + 1
      return 'queued'
    end
  end
  redis.call('RPUSH', log, callback)
  redis.call('LTRIM', log, -log_max, -1)
  redis.call('EXPIRE', log, retention)
  if starts == '1' then return 'duplicate' end
  return 'recorded'
end
local outcomes = {}
for i = 0, (#KEYS - 2) / 3 - 1 do
  local k, a = 3 + 3*i, 7 + 6*i
  local ok, outcome = pcall(accept, KEYS[k], KEYS[k + 1], KEYS[k + 2],
                            ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
                            ARGV[a + 5])
  if ok then outcomes[i + 1] = outcome else outcomes[i + 1] = 'failed: ' .. tostring(outcome) end
end
-- Last: a write that may not grow memory first would let the rest through on a full Redis
-- (a script's first write decides), where each callback must be refused and retried instead.
if ARGV[6] == '1' then
  redis.call('ZREMRANGEBYSCORE', index, '-inf', tonumber(now) - tonumber(retention) * 1000)
end
if queued > 0 then redis.call('PUBLISH', ARGV[5], queued) end
return outcomes
