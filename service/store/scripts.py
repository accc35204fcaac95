"""The Lua scripts of the Redis store (`service.store.redis`): each runs atomically in Redis."""

# extend the lease of a job still held under a ticket, in the status its holder expects
RENEW = """
local held = redis.call('HMGET', KEYS[1], 'ticket', 'status')
if held[1] ~= ARGV[1] or held[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
# mark a job used (for eviction), only while it exists; an ended job's extra bytes count in P:ended_bytes
TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'accessed_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'size_bytes', ARGV[2])
if redis.call('ZSCORE', KEYS[2], ARGV[3]) then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
  redis.call('INCRBY', KEYS[3], ARGV[2])
end
return 1
"""
# delete a job's record; an ended job's bytes leave P:ended_bytes
DELETE = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('DECRBY', KEYS[3], tonumber(redis.call('HGET', KEYS[1], 'size_bytes') or '0'))
end
redis.call('DEL', KEYS[1])
return 1
"""
