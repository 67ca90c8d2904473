-- wrk script for bench/collect_bench.py: single triggerCustomEvent calls, as the spec writes them, each for one of
-- BENCH_CONTACTS contacts (created on their first event). The API key comes from BENCH_API_KEY. done() prints one
-- RESULT line in the format of collect.lua.

local key = os.getenv("BENCH_API_KEY")
local contacts = tonumber(os.getenv("BENCH_CONTACTS") or "2000")
local run = os.getenv("BENCH_RUN") or "run"
local slugs = {}
for slug in string.gmatch(os.getenv("BENCH_SLUGS") or "bench-event", "[^,]+") do
  slugs[#slugs + 1] = slug
end
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 100 + tid)
  ok, failed = 0, 0
end

function request()
  local body = string.format(
    '{"query":"mutation { triggerCustomEvent(input: {slug: \\"%s\\", email: \\"%s-%d@bench.test\\", metadata: {n: %d}}) }"}',
    slugs[math.random(#slugs)], run, math.random(1, contacts), math.random(1, 1000))
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key }, body)
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"triggerCustomEvent":true', 1, true) then
    ok = ok + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local ok_total, failed_total = 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    failed_total = failed_total + thread:get("failed")
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d generated=0 resent=0 recorded=%d duplicate=0 "
      .. "non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), ok_total, failed_total,
    errors.connect + errors.read + errors.write + errors.timeout))
end
