-- wrk script for bench/collect_bench.py: realistic beacon hits from many visitors.
--
-- Each request is one hit with a new unique id (run prefix, wrk thread, counter): 60% impressions (10% of them
-- landing from an email campaign, which starts a new visit), 40% custom events with small metadata, from a pool of
-- BENCH_VISITORS visitors. BENCH_RESEND of the requests repeat the thread's previous hit with "retry": true, as the
-- beacon does after a lost answer, so the run also checks that a hit is recorded once under concurrency.
-- The ids answered 200 are written to BENCH_IDS_FILE for the database check; done() prints one RESULT line.

local run = os.getenv("BENCH_RUN") or "run"
-- Visitors are shared by the runs of one benchmark (warm-up included), so a run sees new and returning visitors.
local visitor_prefix = os.getenv("BENCH_VISITOR_PREFIX") or run
local visitors = tonumber(os.getenv("BENCH_VISITORS") or "2000")
local resend_ratio = tonumber(os.getenv("BENCH_RESEND") or "0.02")
-- Browsers send the page's origin with every hit; the endpoint checks it against the account's domains.
local origin = os.getenv("BENCH_ORIGIN") or "https://www.bench.test"
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
  counter, sent, resent = 0, 0, 0
  recorded, duplicate = 0, 0
  accepted = {}
  last = nil
end

local function hit_body(id, visitor)
  local page = "https://www.bench.test/page/" .. math.random(1, 50)
  local r = math.random()
  if r < 0.06 then
    page = page .. "?utm_source=newsletter&utm_medium=email&utm_campaign=c" .. math.random(1, 3)
  end
  if r < 0.6 then
    return string.format(
      '{"type":"impression","id":"%s","visitor":"%s","url":"%s","title":"Bench page","referrer":"https://www.google.com/"}',
      id, visitor, page)
  end
  return string.format(
    '{"type":"event","id":"%s","visitor":"%s","url":"%s","slug":"%s","metadata":{"planTier":"enterprise","n":%d}}',
    id, visitor, page, slugs[math.random(#slugs)], math.random(1, 1000))
end

function request()
  local body
  if last ~= nil and math.random() < resend_ratio then
    body = '{"retry":true,' .. string.sub(last, 2)
    resent = resent + 1
  else
    counter = counter + 1
    local id = string.format("%s-%d-%08d", run, tid, counter)
    local visitor = string.format("%s-v%06d", visitor_prefix, math.random(1, visitors))
    body = hit_body(id, visitor)
    last = body
  end
  sent = sent + 1
  return wrk.format("POST", nil, { ["Content-Type"] = "text/plain;charset=UTF-8", ["Origin"] = origin }, body)
end

function response(status, headers, body)
  if status == 200 or status == 202 then
    local id = string.match(body, '"id": "([^"]+)"')
    if id then
      accepted[id] = true
    end
    if string.find(body, '"duplicate"', 1, true) then
      duplicate = duplicate + 1
    else
      recorded = recorded + 1
    end
  end
end

function done(summary, latency, requests)
  local ids_file = os.getenv("BENCH_IDS_FILE")
  local out = ids_file and io.open(ids_file, "w")
  local generated, sent_total, resent_total, recorded_total, duplicate_total = 0, 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    generated = generated + thread:get("counter")
    sent_total = sent_total + thread:get("sent")
    resent_total = resent_total + thread:get("resent")
    recorded_total = recorded_total + thread:get("recorded")
    duplicate_total = duplicate_total + thread:get("duplicate")
    if out then
      out:write(string.format("#generated %d %d\n", thread:get("tid"), thread:get("counter")))
      for id, _ in pairs(thread:get("accepted")) do
        out:write(id, "\n")
      end
    end
  end
  if out then
    out:close()
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d generated=%d resent=%d recorded=%d duplicate=%d "
      .. "non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), generated, resent_total,
    recorded_total, duplicate_total, errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
