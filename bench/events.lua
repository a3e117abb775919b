-- bench/events.lua: wrk script POSTing batches of events (click/view on the documents an
-- impression showed) with unique event ids. Usage: wrk ... -s events.lua URL -- IMP DOCS BATCH
-- where DOCS is "d1,d2,..." in shown order.
local counter = 0
local threads = {}
local imp, docs, batch
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  imp = args[1]
  docs = {}
  for d in string.gmatch(args[2], "[^,]+") do docs[#docs + 1] = d end
  batch = tonumber(args[3] or "100")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local parts = {}
  for i = 1, batch do
    local p = (i - 1) % #docs + 1
    local t = (i % 4 == 0) and "click" or "view"
    parts[i] = string.format(
      '{"impression_id":%s,"doc_id":"%s","position":%d,"type":"%s","event_id":"t%s-%d-%d"}',
      imp, docs[p], p, t, tostring(tid), counter, i)
  end
  return wrk.format(nil, "/events", nil, "[" .. table.concat(parts, ",") .. "]")
end
