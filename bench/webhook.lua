-- wrk script: POST one signed order webhook with a unique X-Shopify-Webhook-Id per request.
-- Ids are UUID-shaped and random in their leading bits, like Shopify's: an id that grows with each
-- request would land every insert at the end of the unique index, which flatters the database side.
-- BENCH_BODY_FILE, BENCH_HMAC, BENCH_SHOP, BENCH_RUN and BENCH_API_VERSION come from the environment.
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
  body = f:read("*a")
  f:close()
  hmac = os.getenv("BENCH_HMAC")
  shop = os.getenv("BENCH_SHOP")
  run_id = os.getenv("BENCH_RUN") or "run"
  api_version = os.getenv("BENCH_API_VERSION")
  -- A seed per run and thread; the thread and counter in the id's tail keep ids unique whatever the draws.
  local seed = tid * 7919
  for i = 1, #run_id do seed = (seed * 31 + run_id:byte(i)) % 2147483647 end
  math.randomseed(seed + os.time())
end

local function uuid_like(kind)
  return string.format("%08x-%04x-4%x%02x-%04x-%04x%08x", math.random(0, 0x7fffffff), math.random(0, 0xffff),
                       kind, tid % 256, math.random(0, 0xffff), math.random(0, 0xffff), counter)
end

function request()
  counter = counter + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Topic"] = "orders/fulfilled",
    ["X-Shopify-Shop-Domain"] = shop,
    ["X-Shopify-Hmac-Sha256"] = hmac,
    ["X-Shopify-Webhook-Id"] = uuid_like(0),
    ["X-Shopify-Event-Id"] = uuid_like(1),
    ["X-Shopify-API-Version"] = api_version,
  }
  return wrk.format("POST", "/webhooks", headers, body)
end

-- BENCH_DELAY_MS (optional): each connection pauses this long between its requests, so 200
-- senders offer a steady rate below saturation instead of as fast as the server answers.
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end
