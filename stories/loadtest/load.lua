-- One class of request for many users, driven by wrk for `stories loadtest`.
--
-- LOADTEST_DATA names a Lua file (written by stories/loadtest/drive.py) that
-- sets `requests`, a list of {method, path, headers, body}, one per user and
-- thing they do, and `think_ms`, the pause a person takes after each answer
-- (0: flat out). Each connection is one user; each request takes the next entry.

dofile(os.getenv("LOADTEST_DATA"))

local threads = {}

function setup(thread)
  thread:set("thread_number", #threads + 1)
  table.insert(threads, thread)
end

local formatted, count, position
statuses = {}

function init(args)
  formatted = {}
  for i, r in ipairs(requests) do
    formatted[i] = wrk.format(r[1], r[2], r[3], r[4])
  end
  count = #formatted
  math.randomseed(os.time() * 1000 + thread_number)
  position = math.random(count)
end

function request()
  position = position % count + 1
  return formatted[position]
end

if think_ms > 0 then
  -- About think_ms between an answer and the next request, spread so that a
  -- thousand users do not march in step (wrk also delays each first request).
  function delay()
    return math.random(math.floor(think_ms / 2), math.floor(think_ms * 3 / 2))
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

-- One line for the driver: counts, socket errors, statuses and the latency
-- histogram (microseconds, count), so slices merge into exact percentiles.
function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      merged[code] = (merged[code] or 0) + n
    end
  end
  local codes = {}
  for code, n in pairs(merged) do
    table.insert(codes, string.format('"%d":%d', code, n))
  end
  local histogram = {}
  for i = 1, #latency do
    local value, n = latency(i)
    table.insert(histogram, string.format("[%d,%d]", value, n))
  end
  local e = summary.errors
  io.write(string.format(
    'LOADTEST {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d},"statuses":{%s},"latency_us":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout,
    table.concat(codes, ","), table.concat(histogram, ",")))
end
