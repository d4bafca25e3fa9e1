-- A final recording keeps in Redis only what de-duplication, the list and its filters need: a
-- few short fields, written anew (a hash that once held long values stays in Redis's large
-- encoding). Its payloads and the rest of its state are in the archive by then (`state.json`).
-- KEYS: state, transcription callback. ARGV: milliseconds until it is forgotten (the retention
-- from its acceptance), then the fields to keep as name, value pairs. Returns 0 (and changes
-- nothing) for a recording erased meanwhile.
if redis.call('HGET', KEYS[1], 'status') == 'erased' then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
