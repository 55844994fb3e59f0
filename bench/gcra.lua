-- GCRA as a Lua script, the way applications do it without CL.THROTTLE: same arithmetic
-- and reply as upstream GCRA / redis-cell (burst+1 limit, TAT in µs, seconds rounded up).
-- Used by docs/benchmarks.md (rate limiting). KEYS[1]; ARGV: max_burst count period cost.
local burst = tonumber(ARGV[1]) + 1
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ei = math.floor(period * 1000000 / rate + 0.5)
local variance = ei * burst
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local new_tat = math.max(tat, now) + ei * cost
local diff = now - (new_tat - variance)
local limited, retry, ttl = 0, -1, 0
if diff < 0 then
  limited = 1
  if ei * cost <= variance then retry = math.ceil(-diff / 1000000) end
  ttl = tat - now
else
  ttl = new_tat - now
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(1, math.ceil(ttl / 1000)))
end
local nxt = variance - ttl
local remaining = 0
if nxt > -ei then remaining = math.floor(nxt / ei) end
return {limited, burst, remaining, retry, math.ceil(ttl / 1000000)}
