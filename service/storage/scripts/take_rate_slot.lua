-- Take slots of an account's rate limit, as many as the window has up to those asked for
-- (`service.storage.rate_limit`). KEYS: the account's log. ARGV: now (s), window (s), limit,
-- how many slots are asked for, an id unique to this call, '1' to trim requests that left the
-- window (one call in a few: what left it is no longer counted anyway).
-- Returns how many were taken, and how long the rest must wait for a slot (s).
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
if ARGV[6] == '1' then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  redis.call('PEXPIRE', key, math.ceil(window * 2000))
end
local since = '(' .. (now - window)
local free = limit - redis.call('ZCOUNT', key, since, '+inf')
local taken = math.max(0, math.min(free, wanted))
if taken > 0 then
  local members = {}
  for i = 1, taken do
    members[#members + 1] = now
    members[#members + 1] = ARGV[5] .. ':' .. i
  end
  redis.call('ZADD', key, unpack(members))
end
if taken == wanted then return {taken, '0'} end
local oldest = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {taken, tostring(tonumber(oldest[2]) + window - now)}
