-- A pool runs Lua functions in worker processes: results in order, Lua errors per item, a killed
-- worker fails only its task and the pool goes on.
local mp = require("mproc")
local leak = require("leakcheck")
local before = leak.snapshot()
do -- the test; its objects are garbage after it

function square(x) return x * x end
function fails_on_3(x)
  if x == 3 then error("three is not allowed") end
  return x * 10
end
function die_on_2(x)
  if x == 2 then
    os.execute("kill -9 $PPID")   -- the shell's parent is this worker: kill it mid-task
    while true do end
  end
  return -x
end
function pid_and(x) return mp.getpid(), x, { nested = { x } } end
local hidden = { triple = function(x) return 3 * x end }

local pool <close> = mp.Pool{ workers = 3, task_timeout = 60 }
assert(pool:workers() == 3)

-- map: results in the order of the input
local items = {}
for i = 1, 40 do items[i] = i end
local r = pool:map(square, items)
assert(#r == 40)
for i = 1, 40 do assert(r[i] == i * i, "item " .. i) end
assert(#pool:map("square", {}) == 0)

-- apply: several results and tables travel; the task ran in another process
local pid, x, t = pool:apply(pid_and, "v")
assert(pid ~= mp.getpid() and x == "v" and t.nested[1] == "v")

-- a Lua error in a task is an error for that item only
local out, errs = pool:map_status(fails_on_3, { 1, 2, 3, 4 })
assert(out[1] == 10 and out[2] == 20 and out[3] == nil and out[4] == 40)
assert(errs and errs[3] and not errs[1] and not errs[4])
assert(errs[3]:find("MPROC_ETASKFAILED", 1, true) and errs[3]:find("three is not allowed", 1, true), errs[3])
local ok, err = pcall(pool.map, pool, fails_on_3, { 1, 2, 3 })
assert(not ok and err:find("item 3", 1, true) and err:find("three is not allowed", 1, true), err)
ok, err = pcall(pool.apply, pool, fails_on_3, 3)
assert(not ok and err:find("MPROC_ETASKFAILED", 1, true) and err:find("three is not allowed", 1, true), err)

-- a worker killed mid-task: that item gets a worker-died error, the others their results
out, errs = pool:map_status(die_on_2, { 1, 2, 3, 4, 5, 6 }, 1)
assert(errs and errs[2] and errs[2]:find("MPROC_EWORKERDIED", 1, true), errs and errs[2])
for _, i in ipairs{ 1, 3, 4, 5, 6 } do assert(out[i] == -i, "after death, item " .. i) end
ok, err = pcall(pool.apply, pool, die_on_2, 2)
assert(not ok and err:find("MPROC_EWORKERDIED", 1, true), err)
-- and the pool goes on with replaced workers
r = pool:map(square, { 7, 8, 9 })
assert(r[1] == 49 and r[2] == 64 and r[3] == 81)

-- a function not known to the workers is refused in the caller
ok, err = pcall(pool.apply, pool, function() end)
assert(not ok and err:find("functions", 1, true), err)
ok, err = pcall(pool.apply, pool, "no_such_function")
assert(not ok and err:find("no task function", 1, true), err)

-- a pool over a table of local functions
local p2 <close> = mp.Pool{ workers = 2, functions = hidden }
assert(p2:map(hidden.triple, { 1, 2, 3 })[3] == 9)
p2:close(); p2:join()

pool:close(); pool:join()
ok, err = pcall(pool.apply, pool, square, 2)
assert(not ok and err:find("MPROC_ECLOSED", 1, true), err)
end
leak.check(before)
print("ok pool")
