-- bench/search.lua: wrk script cycling through a TSV of queries (qid<TAB>text) as
-- GET /search?k=K&q=..., percent-encoded. Usage: wrk ... -s search.lua URL -- FILE [K]
local queries = {}
local k = "10"
local idx = 0
local function enc(s)
  return (s:gsub("([^%w%-%._~])", function(c) return string.format("%%%02X", string.byte(c)) end))
end
function init(args)
  for line in io.lines(args[1]) do
    local q = line:match("^[^\t]*\t(.*)$")
    if q and #q > 0 and #q <= 1024 then queries[#queries + 1] = enc(q) end
  end
  if args[2] then k = args[2] end
  idx = math.random(#queries)
end
function request()
  idx = idx % #queries + 1
  return wrk.format("GET", "/search?k=" .. k .. "&q=" .. queries[idx])
end
