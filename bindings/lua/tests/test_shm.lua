-- Value and Array in shared memory, changed by a child, seen by the parent.
local mp = require("mproc")
local leak = require("leakcheck")
local before = leak.snapshot()
do -- the test; its objects are garbage after it

local v = mp.Value("i", 5)
local d = mp.Value("d", 0.5)
local a = mp.Array("q", { 1, 2, 3, 4 })
local f = mp.Array("d", 3)
assert(v:get() == 5 and math.type(v:get()) == "integer" and d:get() == 0.5)
assert(#a == 4 and a[4] == 4 and f[1] == 0)

local p = mp.Process(function()
  v:set(v:get() * 10)
  d:set(2.25)
  for i = 1, #a do a[i] = a[i] * a[i] end
  f[3] = 1.5
end):start()
p:join()
assert(p:exitcode() == 0)
assert(v:get() == 50, "value " .. v:get())
assert(d:get() == 2.25)
local t = a:totable()
assert(t[1] == 1 and t[2] == 4 and t[3] == 9 and t[4] == 16)
assert(f[3] == 1.5)

-- atomic add from two children at once
local c = mp.Value("q", 0)
local ps = {}
for i = 1, 2 do ps[i] = mp.Process(function() for _ = 1, 1000 do c:add(1) end end):start() end
for i = 1, 2 do ps[i]:join(); assert(ps[i]:exitcode() == 0) end
assert(c:get() == 2000, "atomic " .. c:get())

-- the value's own lock
local lk = v:get_lock()
assert(lk:acquire()); lk:release()

local ok, err = pcall(function() return a[5] end)
assert(ok and err == nil)
ok, err = pcall(function() a[5] = 1 end)
assert(not ok and err:find("out of range", 1, true), err)
ok, err = pcall(mp.Value, "?")
assert(not ok and err:find("MPROC_EINVAL", 1, true), err)
end
leak.check(before)
print("ok shm")
