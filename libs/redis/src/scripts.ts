/**
 * Lua scripts: each runs atomically in Redis, so concurrent requests on every node see one
 * consistent bucket or counter without locks or retries.
 */

/**
 * Token bucket (https://en.wikipedia.org/wiki/Token_bucket), refilled continuously at `rate`
 * tokens per second up to `burst`.
 *
 * KEYS[1] the bucket hash; ARGV: rate (per second), burst, now (epoch ms), count.
 * Returns {1, 0} when `count` tokens were taken, else {0, ms until they exist}.
 *
 * Time is passed in by the caller (the node's clock), not read with TIME, so tests drive it; a
 * clock running behind the stored `ts` refills nothing (elapsed is clamped at 0) rather than
 * draining the bucket. A request larger than the whole bucket is admitted when the bucket is full
 * and leaves it in debt, so a batch bigger than `burst` is slowed down, not refused forever.
 */
export const TAKE_TOKENS = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local count = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate / 1000)
if now > ts then ts = now end
-- An idle bucket is full again after burst/rate seconds; it is then the same as no key at all.
local ttl = math.ceil(burst * 1000 / rate) + 1000
local need = math.min(count, burst)
if tokens >= need then
  redis.call('HSET', KEYS[1], 't', tostring(tokens - count), 'ts', tostring(ts))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], ttl)
return {0, math.ceil((need - tokens) * 1000 / rate)}
`;

/**
 * Reserves room for `count` pending messages under `max`.
 *
 * KEYS[1] the counter; ARGV: count, max.
 * Returns {-1, 0} when the counter is missing (load it from Postgres, then retry), {1, new value}
 * when reserved, {0, ms until the counter is reloaded} when full. INCRBY keeps the key's TTL, so
 * the counter is reloaded from Postgres every reconciliation interval whatever happens meanwhile.
 */
export const RESERVE_PENDING = `
local current = redis.call('GET', KEYS[1])
if not current then return {-1, 0} end
local count = tonumber(ARGV[1])
if tonumber(current) + count > tonumber(ARGV[2]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = 0 end
  return {0, ttl}
end
return {1, redis.call('INCRBY', KEYS[1], count)}
`;
