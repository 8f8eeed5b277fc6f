-- A Lock-guarded counter in three processes: a read-modify-write on a raw (lock-free) Value.
local mp = require("mproc")

local lock = mp.Lock()
local counter = mp.Value("i", 0, { raw = true })
local ROUNDS = 300

local function work()
  for _ = 1, ROUNDS do
    lock:with(function()
      local x = counter:get()
      counter:set(x + 1)
    end)
  end
end

local ps = {}
for i = 1, 3 do ps[i] = mp.Process(work):start() end
for i = 1, 3 do ps[i]:join() end
for i = 1, 3 do assert(ps[i]:exitcode() == 0, "worker " .. i .. " exit " .. tostring(ps[i]:exitcode())) end
assert(counter:get() == 3 * ROUNDS, "counter " .. counter:get())

-- try-acquire with a timeout while a child holds it (one queue per direction: on one queue the
-- child could take back its own message)
local held, done = mp.Queue(), mp.Queue()
local holder = mp.Process(function()
  lock:acquire(); held:put(true); done:get(60); lock:release()
end):start()
held:get(60)
assert(lock:acquire(0.05) == false, "acquire must time out while held")
done:put(true)
holder:join()
assert(lock:acquire(10) == true); lock:release()

-- a holder that died: the next acquire reports owner-dead and holds the lock
local dead = mp.Process(function() lock:acquire(); os.execute("kill -9 $PPID"); while true do end end):start()
dead:join()
assert(dead:exitcode() == -9)
local ok, err = pcall(lock.acquire, lock, 10)
assert(not ok and err:find("MPROC_EOWNERDEAD", 1, true), err)
lock:release()

-- releasing a lock not held
ok, err = pcall(lock.release, lock)
assert(not ok and err:find("MPROC_ENOTOWNER", 1, true), err)
local r = mp.RLock()
r:acquire(); r:acquire(); r:release(); r:release()
print("ok lock")
