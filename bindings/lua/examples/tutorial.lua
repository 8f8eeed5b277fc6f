-- The tutorial in Lua: Process per job, Pool map of squares, errors per item, Queue
-- producer/consumer with a poison pill, Value/Array, a Lock-guarded counter.
local mp = require("mproc")

-- Process per job: the integer result is the exit code
local procs = {}
for i = 1, 3 do
  procs[i] = mp.Process(function(job) print("job " .. job .. " in " .. mp.current_name()); return job end, i):start()
end
for i, p in ipairs(procs) do p:join(); print("job " .. i .. " exit code " .. p:exitcode()) end

-- Pool map of squares (task functions: globals defined before the pool)
function square(x) return x * x end
function safe_divide(a) if a == 0 then error("division by zero") end return 10 // a end
local pool <close> = mp.Pool{ workers = 2 }
print("squares: " .. table.concat(pool:map(square, { 1, 2, 3, 4, 5 }), " "))
local out, errs = pool:map_status(safe_divide, { 5, 0, 2 })
for i = 1, 3 do print("safe_divide item " .. i .. ": " .. (out[i] and tostring(out[i]) or ("error " .. errs[i]))) end

-- Queue producer/consumer with a poison pill
local q = mp.Queue()
local producer = mp.Process(function() for i = 1, 5 do q:put("msg " .. i) end q:put(nil) end):start()
while true do
  local m = q:get()
  if m == nil then break end
  print("got " .. m)
end
producer:join()

-- Value/Array changed by a child
local v, a = mp.Value("d", 0.0), mp.Array("i", { 1, 2, 3 })
local c = mp.Process(function() v:set(3.14); for i = 1, #a do a[i] = -a[i] end end):start()
c:join()
print("value " .. v:get() .. ", array " .. table.concat(a:totable(), " "))

-- Lock-guarded counter in three processes
local lock, n = mp.Lock(), mp.Value("i", 0, { raw = true })
local ws = {}
for i = 1, 3 do
  ws[i] = mp.Process(function() for _ = 1, 100 do lock:with(function() n:set(n:get() + 1) end) end end):start()
end
for _, w in ipairs(ws) do w:join() end
print("counter " .. n:get())
assert(n:get() == 300)
