-- Ctrl-C during a blocking call: lua5.4 raises "interrupted!" while the call waits (it waits in
-- slices, and the interpreter's SIGINT hook fires between them). Each case runs in its own lua5.4,
-- which gets a real SIGINT once it is blocked; a call deaf to it would wait forever (the CTest
-- timeout then fails this test).
local leak = require("leakcheck")
local before = leak.snapshot()

local CASES = {
  queue_get = [[local q = mp.Queue(); ready(); q:get()]],
  lock_acquire = [[
    local l, held = mp.Lock(), mp.Queue()
    mp.Process{ target = function() l:acquire(); held:put(true); mp.Queue():get() end,
                daemon = true }:start()
    held:get(); ready(); l:acquire()]],
  pool_apply = [[
    function forever() mp.Queue():get() end
    local pool <close> = mp.Pool{ workers = 1 }
    ready(); pool:apply(forever)]],
  pool_map = [[
    function forever() mp.Queue():get() end
    local pool <close> = mp.Pool{ workers = 2 }
    ready(); pool:map(forever, { 1, 2 })]],
  process_join = [[
    local p = mp.Process{ target = function() mp.Queue():get() end, daemon = true }:start()
    ready(); p:join()]],
}

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -m 700 " .. dir))
for name, body in pairs(CASES) do
  local script, marker = dir .. "/" .. name .. ".lua", dir .. "/" .. name .. ".ready"
  local f = assert(io.open(script, "w"))
  f:write('local mp = require("mproc")\n',
          'local function ready() assert(io.open(arg[1], "w")):close() end\n', body, "\n",
          'print("not interrupted")\n')
  f:close()
  -- start it, wait until it is ready and its main thread sleeps, then SIGINT it
  local cmd = string.format([[
lua5.4 %s %s 2>&1 & pid=$!
while [ ! -e %s ] || [ "$(cut -d' ' -f3 /proc/$pid/stat)" != S ]; do sleep 0.01; done
kill -INT $pid; wait $pid; echo "exit $?"]], script, marker, marker)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  assert(out:find("interrupted!", 1, true) and not out:find("not interrupted", 1, true)
         and not out:find("exit 0", 1, true), name .. ": " .. out)
  os.remove(script)
  os.remove(marker)
end
os.remove(dir)

leak.check(before)
print("ok signals")
