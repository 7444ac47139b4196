-- wrk script: HTTP/1.1 pipelining, and a machine-readable summary.
--
--   wrk -t1 -c50 -d10s -s scripts/wrk-pipeline.lua URL -- 16
--
-- The argument after `--` is the pipeline depth (default 16): each connection
-- writes that many GET requests of URL's path back to back, then reads the
-- responses in order. Depth 1 is plain wrk (one request at a time).
--
-- At the end it prints one line:
--   WRK_RESULT requests=N duration_us=N rps=F connect=N read=N write=N
--              timeout=N status=N p50_us=N p99_us=N max_us=N
-- where connect/read/write/timeout are socket errors and status counts
-- responses with a status of 400 or more (wrk's "Non-2xx or 3xx").

-- (done() runs in wrk's main Lua state, where init() never ran: the depth is
-- known to the caller, not printed.)
-- args[0] is the URL, args[1] the depth. With depth 1 no request() is
-- defined, so wrk keeps its static fast path, exactly as without a script.
init = function(args)
  local depth = tonumber(args[1]) or 16
  if depth > 1 then
    local r = {}
    for i = 1, depth do
      r[i] = wrk.format(nil)
    end
    local pipelined = table.concat(r)
    request = function()
      return pipelined
    end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d rps=%.1f connect=%d read=%d write=%d timeout=%d status=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
