-- wrk script of bench/run-http.sh: POST /rpc/rpcq.Health/Echo (the URL given to
-- wrk) with a 200-byte proto3 JSON body, Content-Type application/json.
--
-- The payload is 139 bytes ((i * 37 + 11) mod 256 for i = 0..138), base64
-- without padding (186 characters, which proto3 JSON accepts), so that
-- {"payload":"..."} is exactly 200 bytes; a padded form would be 198 or 202.
-- The gateway answers with the same message, padded: 202 bytes.
--
-- At the end it prints one line of key=value pairs for run-http.sh (latency
-- in microseconds, from wrk's own histogram; non2xx counts replies that were
-- not 2xx or 3xx, errors the connect, read, write and timeout errors).
-- No response() callback: wrk then never hands replies to Lua, which would
-- cost the load generator more than the servers it measures.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"payload":"CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYar0PUaP2SJrtP4HUJnjLHW+yBFao+02f4jSG2St9wBJktwlbrfBClOc5i94gcsUXabwOUKL1R5nsPoDTJXfKHG6xA1Wn+kye4TOF2Cp8zxFjtgharP9Bk+Y4it0vccQWaLsNX6H0RpjrPY/Q"}'

assert(#wrk.body == 200, "the Echo body must be 200 bytes, is " .. #wrk.body)

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"wrk: requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d max_us=%d non2xx=%d errors=%d\n",
		summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99), latency.max, e.status,
		e.connect + e.read + e.write + e.timeout))
end
