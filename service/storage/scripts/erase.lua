-- Erase a recording from the relay's Redis in one step (`service.storage.erasures`): its state
-- replaced by a tombstone (a late callback, a sweep or a backfill finds it "erased" and brings
-- nothing back), its pipeline jobs dropped, whatever its subscribers still had to receive of it
-- dropped (an attempt in flight ends as it would; then `recording.erased` follows it), its
-- failed deliveries unlisted. Optionally the erasure that does the rest is created and its job
-- queued, in the same step (`DELETE /v1/recordings/{id}`).
-- KEYS: state, callbacks, transcription, arq queue, subscriptions, then (to create the erasure)
-- its hash, its recordings, the erasures' index.
-- ARGV: erasure id, reason, now (ms), archive day, account, the tombstone's life (ms), the
-- pending, queue, failed and body key prefixes, the event codes ('ctfa'), arq's job and retry
-- key prefixes, the job to queue ('' for none), its encoding, its key's life (ms), the jobs'
-- wake-up channel, how many jobs to drop, those job ids; then the erasure's fields as pairs.
-- Returns the erasure id the recording is erased by (an earlier one's if it was erased before)
-- and 1 if this call erased it, 0 if it was erased already.
local state = KEYS[1]
local erasure_id, reason, now = ARGV[1], ARGV[2], ARGV[3]
local PENDING, QUEUE, FAILED, BODY = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local codes, JOB, RETRY = ARGV[11], ARGV[12], ARGV[13]
local found = redis.call('HMGET', state, 'status', 'erasure_id', 'accepted_at', 'auth_id')
if found[1] == 'erased' then return {found[2], 0} end
local accepted, account = found[3] or now, found[4] or ARGV[5]
if account == '' then account = ARGV[5] end
redis.call('DEL', state, KEYS[2], KEYS[3])
redis.call('HSET', state, 'status', 'erased', 'accepted_at', accepted, 'erased_at', now,
           'updated_at', now, 'erasure_id', erasure_id, 'erasure_reason', reason,
           'day', ARGV[4], 'auth_id', account)
redis.call('PEXPIRE', state, ARGV[6])
local drop = tonumber(ARGV[18])
for i = 19, 18 + drop do
  redis.call('ZREM', KEYS[4], ARGV[i])
  redis.call('DEL', JOB .. ARGV[i], RETRY .. ARGV[i])
end
local rec = string.match(state, '^.*:(.-)$')
for _, sub in ipairs(redis.call('HKEYS', KEYS[5])) do
  local pending = PENDING .. sub
  local v = redis.call('HGET', pending, rec)
  if v then
    local queued, tries, by = string.match(v, '^([^#@]*)#?(%d*)@?(.*)$')
    if by ~= '' then  -- in flight: it ends as it would, and nothing of the recording after it
      local kept = string.sub(queued, 1, 1)
      if tries ~= '' then kept = kept .. '#' .. tries end
      redis.call('HSET', pending, rec, kept .. '@' .. by)
    else
      redis.call('HDEL', pending, rec)
      redis.call('ZREM', QUEUE .. sub, rec)
    end
  end
  for c in string.gmatch(codes, '.') do redis.call('ZREM', FAILED .. sub, rec .. ':' .. c) end
end
for c in string.gmatch(codes, '.') do redis.call('DEL', BODY .. rec .. ':' .. c) end
if ARGV[14] ~= '' then
  local fields = {}
  for i = 19 + drop, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[6], 'listed', 1, unpack(fields))
  redis.call('HSET', KEYS[7], rec, ARGV[4] .. '|' .. account)
  redis.call('ZADD', KEYS[8], now, erasure_id)
  redis.call('PSETEX', JOB .. ARGV[14], ARGV[16], ARGV[15])
  redis.call('ZADD', KEYS[4], now, ARGV[14])
  redis.call('PUBLISH', ARGV[17], 1)
end
return {erasure_id, 1}
