-- Prints one machine-readable line after a wrk run: requests, duration
-- (µs), p50 and p99 latency (µs), and the count of errors (socket errors
-- and non-2xx/3xx responses).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
