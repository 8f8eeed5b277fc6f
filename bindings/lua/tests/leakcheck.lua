-- The Lua suites' leak check: a test file takes a snapshot first and calls check(snapshot) at
-- the end, which fails when a child process (zombies too), a thread, an fd or an mproc name in
-- /dev/shm is left over (after a garbage collection and a few seconds of asynchronous teardown).
local mp = require("mproc")

local M = {}
local GRACE = 5.0  -- seconds

local function lines(cmd)
  local out, p = {}, assert(io.popen(cmd))
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local function ppid_of(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("%) %a+ (%d+)"))
end

-- Whether an mproc /dev/shm block was made by this process, a descendant or a process that is
-- gone (creator pid in its 64-byte trailer, runtime/shm.cpp); other programs' blocks are not ours.
local function shm_ours(name)
  local f = io.open("/dev/shm/" .. name, "rb")
  if not f then return false end
  local t = f:seek("end", -64) and f:read(64)
  f:close()
  local pid = t and #t == 64 and string.unpack("<I8", t, 17) or 0
  while pid > 1 do
    if pid == mp.getpid() then return true end
    pid = ppid_of(pid)
    if not pid then return true end
  end
  return false
end

local function set_of(list)
  local s = {}
  for _, x in ipairs(list) do s[x] = true end
  return s
end

function M.snapshot()
  local me = mp.getpid()
  local children = {}
  for _, pid in ipairs(lines("ls /proc")) do
    if pid:match("^%d+$") and ppid_of(pid) == me then children[#children + 1] = pid end
  end
  -- the listing's own pipe is an fd too: pipes count by number only
  local fds = {}
  for _, l in ipairs(lines("find /proc/" .. me .. "/fd -mindepth 1 -printf '%f %l\\n'")) do
    fds[#fds + 1] = l:gsub(" pipe:%[%d+%]$", " pipe")
  end
  return {
    children = set_of(children),
    threads = set_of(lines("ls /proc/" .. me .. "/task")),
    fds = set_of(fds),
    shm = set_of(lines("ls /dev/shm | grep mproc || true")),
  }
end

local function left_over(before)
  collectgarbage()
  collectgarbage()
  local now, out = M.snapshot(), {}
  for kind, set in pairs(now) do
    for x in pairs(set) do
      if not before[kind][x] and (kind ~= "shm" or shm_ours(x)) then
        out[#out + 1] = kind .. " " .. x
      end
    end
  end
  return out
end

-- Fail (error) when something made since `before` is still there after GRACE seconds.
function M.check(before)
  local t0 = os.time()
  local left = left_over(before)
  while #left > 0 and os.difftime(os.time(), t0) < GRACE do
    os.execute("sleep 0.05")
    left = left_over(before)
  end
  if #left > 0 then error("test left behind: " .. table.concat(left, ", "), 2) end
end

-- The runtime's own thread and fds (supervisor) live as long as the process: start them first.
local warm = mp.Process(function() end):start()
warm:join()
warm:close()

return M
