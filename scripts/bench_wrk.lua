-- wrk workloads of scripts/bench. Run by scripts/bench_run.py, one workload per wrk run:
--
--   wrk -t T -c C -d D --latency -s scripts/bench_wrk.lua URL -- workload=NAME file=PATH threads=T
--
-- Every response body is checked: a workload counts the answers it expects ("ok") and everything
-- else ("fail", by error code), so a fast run of errors shows up as failures, not as speed.
-- done() prints one line "BENCH_RESULT <json>" that the driver reads.
--
-- Workloads (the file holds one item per line, tab-separated fields):
--   reference      GET the reference app's endpoint (no file); expects {"success":true,...}
--   two_round_trips  the same, on the reference app's endpoint that reads Redis twice
--   login          getchallenge then login, again and again: each getchallenge answer's token is
--                  turned into a login with accessKey = md5(token .. access key) computed here, in
--                  pure Lua (wrk's LuaJIT has no md5). file: "username<TAB>access key", one line per
--                  wrk thread (a thread logs in as its own user, so a token's user is known).
--   listtypes      GET operation=listtypes with a live session id, round robin. file: session ids
--   extendsession  POST operation=extendsession with a web cookie, the page's CSRF token and the
--                  page's Origin (as a browser's fetch sends them), round robin.
--                  file: "cookie<TAB>csrf token<TAB>origin"
--   logout         POST operation=logout of a live session; each id is used once (the threads take
--                  disjoint slices) and a thread stops when its slice is used up. file: session ids
--   dead           GET operation=listtypes with a well-formed but dead session id; expects
--                  AUTHENTICATION_REQUIRED. file: session ids

local bit = require("bit")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rol, tobit, bswap, tohex = bit.lshift, bit.rol, bit.tobit, bit.bswap, bit.tohex
local byte, char, rep, format = string.byte, string.char, string.rep, string.format

-- MD5 (RFC 1321) on LuaJIT's 32-bit bit operations -----------------------------------------------

local K = {
  0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
  0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
  0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
  0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
  0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
  0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
  0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
  0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
}
for i = 1, 64 do K[i] = tobit(K[i]) end
local S = {
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
  5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
}

function md5_hex(message)
  local length = #message
  local bits = length * 8
  message = message .. "\128" .. rep("\0", (55 - length) % 64)
  local tail = {}
  for i = 0, 7 do
    tail[i + 1] = char(math.floor(bits / 2 ^ (8 * i)) % 256)
  end
  message = message .. table.concat(tail)
  local a0, b0, c0, d0 =
    tobit(0x67452301), tobit(0xefcdab89), tobit(0x98badcfe), tobit(0x10325476)
  local M = {}
  for chunk = 1, #message, 64 do
    for w = 0, 15 do
      local p = chunk + w * 4
      local b1, b2, b3, b4 = byte(message, p, p + 3)
      M[w] = bor(b1, lshift(b2, 8), lshift(b3, 16), lshift(b4, 24))
    end
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local f, g
      if i < 16 then
        f, g = bor(band(b, c), band(bnot(b), d)), i
      elseif i < 32 then
        f, g = bor(band(d, b), band(bnot(d), c)), (5 * i + 1) % 16
      elseif i < 48 then
        f, g = bxor(b, c, d), (3 * i + 5) % 16
      else
        f, g = bxor(c, bor(b, bnot(d))), (7 * i) % 16
      end
      a, d, c, b = d, c, b, tobit(b + rol(tobit(a + f + K[i + 1] + M[g]), S[i + 1]))
    end
    a0, b0, c0, d0 = tobit(a0 + a), tobit(b0 + b), tobit(c0 + c), tobit(d0 + d)
  end
  return tohex(bswap(a0)) .. tohex(bswap(b0)) .. tohex(bswap(c0)) .. tohex(bswap(d0))
end

-- Refuse to run with a broken digest: every login would fail for the wrong reason.
assert(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e", "md5 self-test failed")
assert(md5_hex("The quick brown fox jumps over the lazy dog") == "9e107d9d372bb6826bd81d3542a419d6",
  "md5 self-test failed")
assert(md5_hex(rep("a", 64)) == "014842d480b571495a4a0363793f7367", "md5 self-test failed")

-- Setup and done: run in wrk's main Lua state ------------------------------------------------------

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function json_value(value)
  local kind = type(value)
  if kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then return "null" end
    return format("%.17g", value)
  elseif kind == "boolean" then
    return tostring(value)
  elseif kind == "table" then
    local parts = {}
    for k, v in pairs(value) do
      parts[#parts + 1] = format("%q", tostring(k)) .. ":" .. json_value(v)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "nil" then
    return "null"
  end
  return format("%q", tostring(value))
end

function done(summary, latency, requests)
  local totals = { ok = 0, fail = 0, non2xx = 0, challenges = 0, logins = 0, exhausted = 0,
                   items = 0 }
  local codes, samples = {}, {}
  for _, thread in ipairs(threads) do
    for name in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
    for code, n in pairs(thread:get("codes") or {}) do
      codes[code] = (codes[code] or 0) + n
    end
    for code, body in pairs(thread:get("samples") or {}) do
      samples[code] = samples[code] or body
    end
  end
  local result = {
    duration_us = summary.duration,
    requests = summary.requests,
    bytes = summary.bytes,
    errors = summary.errors,
    latency_us = {
      mean = latency.mean, max = latency.max, stdev = latency.stdev,
      p50 = latency:percentile(50), p90 = latency:percentile(90),
      p99 = latency:percentile(99), p999 = latency:percentile(99.9),
    },
    checks = totals,
    codes = codes,
    samples = samples,
  }
  io.write("BENCH_RESULT " .. json_value(result) .. "\n")
end

-- Running: each wrk thread has its own Lua state; these are that thread's globals ---------------

ok, fail, non2xx, challenges, logins, exhausted, items = 0, 0, 0, 0, 0, 0, 0
codes = {}
samples = {}

local workload, path, expect_code
local lines = {}
local position = 0
local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local login_user, login_key
-- Tokens from getchallenge answers, first in first out: each is used by the next request, as a
-- client that logs in right after getchallenge would.
local tokens, token_head, token_tail = {}, 1, 0

local function split_tab(line)
  local fields = {}
  for field in string.gmatch(line, "[^\t]+") do fields[#fields + 1] = field end
  return fields
end

local function read_lines(file, every, offset)
  local picked, index = {}, 0
  for line in io.lines(file) do
    if line ~= "" then
      if (index % every) == offset then picked[#picked + 1] = line end
      index = index + 1
    end
  end
  return picked
end

function init(args)
  local options = {}
  for _, arg in ipairs(args) do
    local key, value = string.match(arg, "^([%w_]+)=(.*)$")
    if key then options[key] = value end
  end
  workload = options.workload
  path = options.path or "/webservice.php"
  local nthreads = tonumber(options.threads or "1")
  if workload == "reference" or workload == "two_round_trips" then
    -- nothing to read
  elseif workload == "login" then
    local users = read_lines(options.file, 1, 0)
    local fields = split_tab(users[(tid % #users) + 1])
    login_user, login_key = fields[1], fields[2]
  elseif workload == "logout" then
    -- Disjoint slices: each live session is logged out exactly once.
    lines = read_lines(options.file, nthreads, tid)
  elseif workload == "listtypes" or workload == "dead" or workload == "extendsession" then
    lines = read_lines(options.file, 1, 0)
    -- Start each thread at a different place in the shared list.
    position = math.floor(#lines * tid / nthreads)
  else
    error("unknown workload " .. tostring(workload))
  end
  if workload == "extendsession" then
    for i, line in ipairs(lines) do lines[i] = split_tab(line) end
  end
  expect_code = workload == "dead" and "AUTHENTICATION_REQUIRED" or nil
  items = #lines
end

local function next_line()
  position = position % #lines + 1
  return lines[position]
end

function request()
  if workload == "reference" or workload == "two_round_trips" then
    return wrk.format("GET", path)
  elseif workload == "listtypes" or workload == "dead" then
    return wrk.format("GET", path .. "?operation=listtypes&sessionName=" .. next_line())
  elseif workload == "login" then
    if token_head <= token_tail then
      local token = tokens[token_head]
      tokens[token_head] = nil
      token_head = token_head + 1
      return wrk.format("POST", path, form,
        "operation=login&username=" .. login_user .. "&accessKey=" .. md5_hex(token .. login_key))
    end
    return wrk.format("GET", path .. "?operation=getchallenge&username=" .. login_user)
  elseif workload == "extendsession" then
    local item = next_line()
    return wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Cookie"] = item[1],
      ["X-CSRFToken"] = item[2],
      ["Origin"] = item[3],
    }, "operation=extendsession")
  elseif workload == "logout" then
    position = position + 1
    local id = lines[position]
    if id == nil then
      -- Out of live sessions: stop rather than log out a dead one. The request returned here is
      -- never answered to this thread; it names no session, so it costs the gateway no Redis.
      exhausted = 1
      wrk.thread:stop()
      id = "exhausted"
    end
    return wrk.format("POST", path, form, "operation=logout&sessionName=" .. id)
  end
end

local function count_failure(body)
  fail = fail + 1
  local code = string.match(body, '"code":"([%w_]+)"') or "unparsed"
  codes[code] = (codes[code] or 0) + 1
  if not samples[code] then
    -- The first answer of each kind, for the report (quotes and backslashes dropped).
    samples[code] = (string.gsub(string.sub(body, 1, 200), '["\\]', ""))
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    codes["http_" .. status] = (codes["http_" .. status] or 0) + 1
    fail = fail + 1
    return
  end
  local succeeded = string.sub(body, 1, 15) == '{"success":true'
  if expect_code then
    if not succeeded and string.find(body, '"code":"' .. expect_code .. '"', 1, true) then
      ok = ok + 1
    else
      count_failure(body)
    end
    return
  end
  if not succeeded then
    count_failure(body)
    return
  end
  if workload == "login" then
    local token = string.match(body, '"token":"(%x+)"')
    if token then
      challenges = challenges + 1
      token_tail = token_tail + 1
      tokens[token_tail] = token
    elseif string.find(body, '"sessionName":"', 1, true) then
      logins = logins + 1
    else
      count_failure(body)
      return
    end
  end
  ok = ok + 1
end
