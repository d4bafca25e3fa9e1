-- Record the outcomes of attempts (`service.storage.deliveries`), each in one step.
-- A rate-limited subscription's next event is queued, never taken at once (its claim paces it).
-- KEYS: due, in-flight, attempts on their way to the archive, the subscriptions' spacings.
-- ARGV: now (ms), slots per subscriber, window (attempts kept per subscriber), retention (s),
-- the caller's name (it held these), the pending, queue, body, attempts and failed key
-- prefixes; then nine per attempt: subscription, recording, event code, outcome (succeeded |
-- failed | retry | dropped), due again at (ms, retry), the attempt as the subscriber's window
-- keeps it, as the archive keeps it ('' for none), '1' if it was a failure of the
-- subscriber's (it starts a run of failures, if none is running), and '1' if the caller takes
-- the recording's next event for the subscriber at once, in the slot this one frees.
-- An attempt this caller no longer holds (it was taken for dead and its delivery released) is
-- logged, and changes nothing else. A delivery whose subscription is gone (deleted while the
-- attempt was in flight) is dropped: nothing is kept of it.
-- Returns 1 if a delivery became due now (the caller looks again) or 0, then for each attempt
-- whose next event the caller takes: the attempt's place (1, 2, ...), the event code, its body,
-- queued at (epoch s), the recording's archive day.
local now, capacity, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local retention, holder = tonumber(ARGV[4]), ARGV[5]
local PENDING, QUEUE, BODY, ATTEMPTS, FAILED = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local woke, taken = 0, {0}

local function release(body)
  if redis.call('HINCRBY', body, 'n', -1) <= 0 then redis.call('DEL', body) end
end

for i = 11, #ARGV, 9 do
  local sub, rec, code, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local pending, body = PENDING .. sub, BODY .. rec .. ':' .. code
  local v = redis.call('HGET', pending, rec)
  local codes, tries, by = '', '', nil
  if v then codes, tries, by = string.match(v, '^([^#@]*)#?(%d*)@?(.*)$') end
  local mine = by == holder and string.sub(codes, 1, 1) == code
  local rest = string.sub(codes, 2)
  local chained = mine and rest ~= '' and outcome ~= 'retry' and outcome ~= 'dropped'
    and ARGV[i + 8] == '1' and redis.call('HEXISTS', KEYS[4], sub) == 0
  if mine and not chained then
    if redis.call('HINCRBY', KEYS[2], sub, -1) + 1 >= capacity then
      -- A slot is free: a delivery put off for want of one is due now.
      if redis.call('ZADD', KEYS[1], 'XX', 'LT', 'CH', now, sub) == 1 then woke = 1 end
    end
  end
  if outcome == 'dropped' then
    if mine then
      redis.call('HDEL', pending, rec)
      release(body)
    end
  elseif v then
    local log = ATTEMPTS .. sub
    if redis.call('RPUSH', log, ARGV[i + 5]) > window * 1.2 then
      redis.call('LTRIM', log, -window, -1)
    end
    if ARGV[i + 6] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[i + 6]) end
    if mine then
      if ARGV[i + 7] == '1' then redis.call('HSETNX', pending, '!', now / 1000) end
      if outcome == 'retry' then
        local at = tonumber(ARGV[i + 4])
        redis.call('HSET', pending, rec, codes .. '#' .. ((tonumber(tries) or 0) + 1))
        redis.call('ZADD', QUEUE .. sub, at, rec)
        redis.call('ZADD', KEYS[1], 'LT', at, sub)
      else
        if outcome == 'succeeded' then
          if rest == '' then redis.call('HDEL', pending, rec, '!')
          else redis.call('HDEL', pending, '!') end
        else  -- failed for good: listed for recover
          local failed = FAILED .. sub
          redis.call('ZADD', failed, now / 1000, rec .. ':' .. code)
          redis.call('ZREMRANGEBYSCORE', failed, '-inf', now / 1000 - retention)
          if rest == '' then redis.call('HDEL', pending, rec) end
        end
        if chained then  -- the caller takes the next event in the slot it holds
          local next = string.sub(rest, 1, 1)
          redis.call('HSET', pending, rec, rest .. '@' .. holder)
          local b = redis.call('HMGET', BODY .. rec .. ':' .. next, 'b', 't', 'd')
          taken[#taken + 1] = {(i - 11) / 9 + 1, next, b[1] or '', b[2] or '0', b[3] or ''}
        elseif rest ~= '' then
          redis.call('HSET', pending, rec, rest)
          redis.call('ZADD', QUEUE .. sub, now, rec)
          redis.call('ZADD', KEYS[1], 'LT', now, sub)
          woke = 1
        end
        if outcome == 'failed' and code == 'd' then
          -- An operational event is in no archive: its body stays for recover, as long.
          redis.call('EXPIRE', body, retention)
        else
          release(body)
        end
      end
    end
  end
end
taken[1] = woke
return taken
