-- Queue one event for the subscriptions that want it, keeping its body once however many they
-- are, and mark it emitted on the recording, in one step (`service.storage.deliveries`).
-- A rate-limited subscription is never handed straight to the caller: its claim keeps its pace.
-- KEYS: due, in-flight, the event's body, the recording's state (its `emitted` mark), the
-- subscriptions' spacings.
-- ARGV: now (ms), recording, event code, body, the recording's archive day, slots per
-- subscriber, how many may be handed straight to the caller (its free attempt slots), the
-- caller's name (it holds those), the emitted field ('' for none), the deliveries' wake-up
-- channel, the pending and queue key prefixes, then the subscription ids. Returns the
-- subscriptions handed to the caller to attempt now. Nothing is queued of an erased recording
-- but its `recording.erased` (code `e`).
local now, rec, code = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local capacity, room, holder = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
local PENDING, QUEUE = ARGV[11], ARGV[12]
local subs = #ARGV - 12
if code ~= 'e' and redis.call('HGET', KEYS[4], 'status') == 'erased' then return {} end
if subs > 0 then
  if redis.call('HSETNX', KEYS[3], 'b', ARGV[4]) == 1 then
    redis.call('HSET', KEYS[3], 't', now / 1000, 'd', ARGV[5], 'n', subs)
  else
    redis.call('HINCRBY', KEYS[3], 'n', subs)
  end
end
local handed, queued = {}, 0
local function queue(sub)
  redis.call('ZADD', QUEUE .. sub, now, rec)
  redis.call('ZADD', KEYS[1], 'LT', now, sub)
  queued = queued + 1
end
for i = 13, #ARGV do
  local sub = ARGV[i]
  local pending = PENDING .. sub
  -- Nothing of the recording pending for the subscriber: the caller takes it now if it has
  -- room and the subscriber a free slot (it holds it: `code@holder`), else it is queued.
  local paced = redis.call('HEXISTS', KEYS[5], sub) == 1
  local mark = (room > 0 and not paced) and (code .. '@' .. holder) or code
  if redis.call('HSETNX', pending, rec, mark) == 1 then
    if room <= 0 or paced then
      queue(sub)
    elseif redis.call('HINCRBY', KEYS[2], sub, 1) <= capacity then
      handed[#handed + 1] = sub
      room = room - 1
    else  -- its slots are full
      redis.call('HINCRBY', KEYS[2], sub, -1)
      redis.call('HSET', pending, rec, code)
      queue(sub)
    end
  else
    -- Behind the recording's earlier events for this subscriber: in line after them.
    local codes, rest = string.match(redis.call('HGET', pending, rec), '^([^#@]*)(.*)$')
    redis.call('HSET', pending, rec, codes .. code .. rest)
  end
end
if ARGV[9] ~= '' then redis.call('HSET', KEYS[4], ARGV[9], now) end
if queued > 0 then redis.call('PUBLISH', ARGV[10], queued) end
return handed
