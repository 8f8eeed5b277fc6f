-- A process runs a Lua function; its exit code, a Lua error and a kill come back to the parent.
local mp = require("mproc")
local leak = require("leakcheck")
local before = leak.snapshot()
do -- the test; its objects are garbage after it

-- the function's integer result is the exit code; it sees the arguments and the parent's state
local seen = "parent state"
local p = mp.Process(function(a, b) return (seen == "parent state" and a + b) or 99 end, 3, 4)
p:start()
assert(p:pid() > 0 and p:pid() ~= mp.getpid(), "child pid")
assert(p:join() == true)
assert(p:exitcode() == 7, "exit code " .. tostring(p:exitcode()))
assert(not p:is_alive())
p:close()

-- named process, no result: exit code 0; the child knows its name and its parent
local q = mp.Process{ target = function()
  return (mp.current_name() == "lua-child" and mp.parent_pid() > 0) and 0 or 5
end, name = "lua-child" }
q:start(); q:join()
assert(q:exitcode() == 0, "named child exit " .. tostring(q:exitcode()))
q:close()

-- a Lua error in the child: exit code 1 (the traceback goes to stderr)
local e = mp.Process(function() error("child fails on purpose") end):start()
e:join()
assert(e:exitcode() == 1, "error exit " .. tostring(e:exitcode()))
e:close()

-- a child killed while running: minus the signal number; join with a timeout
local k = mp.Process(function() while true do end end):start()
assert(k:join(0.05) == false, "join timeout must report false")
assert(k:is_alive())
assert(k:exitcode() == nil)
k:kill(); k:join()
assert(k:exitcode() == -9, "killed exit " .. tostring(k:exitcode()))
k:close()

-- errors: the code name and mproc_last_error() text
local ok, err = pcall(mp.C.mproc_process_join, nil, 1)
assert(not ok and err:find("MPROC_EINVAL: mproc_process_join", 1, true), err)
ok, err = pcall(mp.C.lua_process_spawn, mp.C.lua_ref(print), "", nil, false, 2)
assert(not ok and err:find("fork start method", 1, true), err)
end
leak.check(before)
print("ok process")
