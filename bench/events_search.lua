-- wrk script of bench/run-events-search.sh: GET /search?starts_at=..&ends_at=..
-- (the path given to wrk is ignored) with a window picked at random, for
-- every request, from the file named by $SEARCH_WINDOWS: one window per line,
-- "STARTS_AT ENDS_AT" (ISO 8601 date-times, precomputed by the script so that
-- about 20 events fall inside each). $SEARCH_METHOD changes the method
-- (rpcq-http-static, the ceiling, answers POST only: it gets POST with the
-- same path and query and no body). Each wrk thread draws from its own
-- seeded sequence, the same for every server measured.
--
-- At the end it prints the line echo200.lua prints (key=value pairs, latency
-- in microseconds from wrk's histogram; non2xx counts replies that were not
-- 2xx or 3xx, errors the connect, read, write and timeout errors). No
-- response() callback, so replies never cross into Lua.

local method = os.getenv("SEARCH_METHOD") or "GET"
local file = os.getenv("SEARCH_WINDOWS")
assert(file, "SEARCH_WINDOWS must name the file of windows")
local paths = {}
for line in io.lines(file) do
	local a, b = line:match("^(%S+)%s+(%S+)$")
	if a then
		paths[#paths + 1] = "/search?starts_at=" .. a .. "&ends_at=" .. b
	end
end
assert(#paths > 0, "no window in " .. file)

local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("thread_id", threads)
end

function init(args)
	math.randomseed(1000 + (thread_id or 0))
end

function request()
	return wrk.format(method, paths[math.random(#paths)])
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"wrk: requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d\n",
		summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99), latency.max, e.status,
		e.connect + e.read + e.write + e.timeout))
end
