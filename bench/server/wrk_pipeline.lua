-- wrk_pipeline.lua: sends DEPTH requests for PATH in one write and waits for
-- all DEPTH responses before the next batch (HTTP/1.1 pipelining).
--
--   wrk -t1 -c256 -d5s --latency -s bench/server/wrk_pipeline.lua \
--       http://127.0.0.1:8080 -- /plaintext 16
--
-- wrk counts every response as a request, so Requests/sec is responses per
-- second; its latency figures are per batch (first request written to last
-- response read), not per request.
local path = "/plaintext"
local depth = 16

function init(args)
  path = args[1] or path
  depth = tonumber(args[2]) or depth
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format(nil, path)
  end
  req = table.concat(batch)
end

function request()
  return req
end
