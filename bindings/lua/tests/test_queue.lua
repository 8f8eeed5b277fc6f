-- A Queue between processes: a producer child, a consumer child and the parent.
local mp = require("mproc")
local leak = require("leakcheck")
local before = leak.snapshot()
do -- the test; its objects are garbage after it

local jobs, results = mp.Queue(), mp.Queue()
local N = 200

local producer = mp.Process(function()
  for i = 1, N do jobs:put(i, "item " .. i) end
  jobs:put(nil)                          -- poison pill
end):start()

local consumer = mp.Process(function()
  local sum, count = 0, 0
  while true do
    local i, text = jobs:get()
    if i == nil then break end
    assert(text == "item " .. i)
    sum, count = sum + i, count + 1
  end
  results:put({ sum = sum, count = count })
  return count == N and 0 or 3
end):start()

local r = results:get(60)
producer:join(); consumer:join()
assert(producer:exitcode() == 0, "producer " .. tostring(producer:exitcode()))
assert(consumer:exitcode() == 0, "consumer " .. tostring(consumer:exitcode()))
assert(r.count == N and r.sum == N * (N + 1) // 2, "sum " .. tostring(r.sum))

-- raw bytes, empty and timeouts
local q = mp.Queue()
assert(q:empty())
q:put_bytes("\0\1\2 bytes")
assert(q:get_bytes() == "\0\1\2 bytes")
local ok, err = pcall(q.get, q, 0.01)
assert(not ok and err:find("MPROC_EEMPTY", 1, true) or err:find("MPROC_ETIMEDOUT", 1, true), err)
end
leak.check(before)
print("ok queue")
