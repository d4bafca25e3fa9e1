-- wrk script: replays pre-built raw HTTP requests from a file, each thread its own share,
-- so that every request sent is distinct (unique recording ids, their own signatures).
-- Arguments: the file, the number of wrk threads, and how many requests of the file to skip
-- (so that successive runs against one relay send callbacks it has not seen).
local requests = {}
local position = 0
local separator = "\n#####\n"

function setup(thread)
  thread:set("thread_index", counter or 0)
  counter = (counter or 0) + 1
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  local threads = tonumber(args[2])
  local offset = tonumber(args[3] or "0")
  local n = 0
  local start = 1
  while true do
    local s, e = string.find(data, separator, start, true)
    if not s then break end
    if n >= offset and n % threads == thread_index then
      table.insert(requests, string.sub(data, start, s - 1))
    end
    n = n + 1
    start = e + 1
  end
end

function request()
  position = position + 1
  if position > #requests then position = 1 end
  return requests[position]
end
