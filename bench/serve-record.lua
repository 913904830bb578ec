-- wrk script for bench/serve.sh: each request POSTs one new costs line
-- (text/csv, a header and one row) to /api/v1/costs.
--
-- Every id is unique: the run's nonce (SERVE_BENCH_RUN, set by serve.sh),
-- wrk's thread number and a per-thread counter. The row is valid for the
-- 2022 SMA (examples/us-japan-sma-2022.toml): category SERVE_BENCH_CATEGORY
-- (default welfare, uncapped), a date inside the term, an amount in yen.
--
-- Environment:
--   SERVE_BENCH_TOKEN     the bearer token (recorder or admin)
--   SERVE_BENCH_RUN       a nonce for this run's ids (default: the clock)
--   SERVE_BENCH_CATEGORY  welfare | utilities | labor | facilities ...
--   SERVE_BENCH_MAX       requests per wrk thread before it stops (default 100000)
--
-- Each answer is checked: a 2xx whose body does not say `"recorded": 1` is
-- counted as a failure, and done() prints the counts; serve.sh fails the
-- run on any.

local token = os.getenv("SERVE_BENCH_TOKEN") or ""
local run = os.getenv("SERVE_BENCH_RUN") or tostring(os.time())
local category = os.getenv("SERVE_BENCH_CATEGORY") or "welfare"
local max = tonumber(os.getenv("SERVE_BENCH_MAX") or "100000")

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tid = wrk.thread:get("tid")
  sent = 0
  answered = 0
  wrong = 0
  status_bad = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "text/csv"
end

local header = "id,date,category,amount,currency,quantity,site,description\n"

function request()
  sent = sent + 1
  -- dates spread over the term (FY2022..FY2026), day 1..28 of a month
  local k = sent + tid * 7919
  local year = 2022 + (k % 5)
  local month = 4 + (k % 9)
  local day = 1 + (k % 28)
  local quantity = ""
  if category == "labor" then quantity = "3" end
  local row = string.format("SRV-%s-%d-%d,%04d-%02d-%02d,%s,%d,JPY,%s,Okinawa,served\n",
    run, tid, sent, year, month, day, category, 100000 + (k % 900000), quantity)
  return wrk.format(nil, "/api/v1/costs?file=serve-bench-" .. run .. ".csv", nil, header .. row)
end

function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    status_bad = status_bad + 1
  elseif not string.find(body, '"recorded": 1', 1, true) then
    wrong = wrong + 1
  end
  if answered >= max then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local a, w, s = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + (t:get("answered") or 0)
    w = w + (t:get("wrong") or 0)
    s = s + (t:get("status_bad") or 0)
  end
  io.write(string.format("checked answers: %d, non-2xx: %d, 2xx not recording one line: %d\n", a, s, w))
end
