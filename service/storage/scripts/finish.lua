-- A final recording keeps in Redis only what de-duplication, the list and its filters need: a
-- few short fields, written anew (a hash that once held long values stays in Redis's large
-- encoding). Its payloads and the rest of its state are in the archive by then (`state.json`).
-- KEYS: state, transcription callback. ARGV: milliseconds until it is forgotten (the retention
-- from its acceptance), then the fields to keep as name, value pairs.
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
