"""Per-realm QBO request budget shared by every worker on every machine (Redis): 500/min, 10 at once.

Both checks and the grant happen in one Lua script against Redis' own clock, so workers on
different machines agree. Concurrency slots are leases that expire, so a SIGKILLed worker's slot
comes back by itself. After a 429 the whole realm pauses for 60 s.
"""

from __future__ import annotations

import time
import uuid

import redis

from .errors import RealmBusy

PER_MINUTE = 480  # Intuit allows 500/min per realm; keep headroom for clock skew and manual use
CONCURRENT = 10
BATCHES_PER_MINUTE = 38  # Intuit allows 40 batch requests/min per realm
LEASE_SECONDS = 150  # longer than any single request may take (client timeout + retries)
MAX_WAIT_SECONDS = 2.0

_ACQUIRE = """
local rate_key, conc_key, pause_key, batch_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit, conc_limit, lease, token = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local batch_limit = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local paused = redis.call('PTTL', pause_key)
if paused > 0 then return {0, tostring(paused / 1000)} end
redis.call('ZREMRANGEBYSCORE', rate_key, '-inf', now - 60)
redis.call('ZREMRANGEBYSCORE', conc_key, '-inf', now)
if redis.call('ZCARD', rate_key) >= limit then
  local oldest = redis.call('ZRANGE', rate_key, 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + 60 - now)}
end
if redis.call('ZCARD', conc_key) >= conc_limit then return {0, '0.05'} end
if batch_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', batch_key, '-inf', now - 60)
  if redis.call('ZCARD', batch_key) >= batch_limit then
    local oldest = redis.call('ZRANGE', batch_key, 0, 0, 'WITHSCORES')
    return {0, tostring(tonumber(oldest[2]) + 60 - now)}
  end
  redis.call('ZADD', batch_key, now, token)
  redis.call('EXPIRE', batch_key, 61)
end
redis.call('ZADD', rate_key, now, token)
redis.call('ZADD', conc_key, now + lease, token)
redis.call('EXPIRE', rate_key, 61)
redis.call('EXPIRE', conc_key, lease + 1)
return {1, '0'}
"""


# A request leaves the concurrency set and counts in the rolling minutes from when it ENDED: QBO counts
# it when it arrives, which may be any time between our grant and its answer (a loaded host, a slow
# network), so counting from the grant could let QBO see more in its minute than we did in ours.
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREM', KEYS[1], ARGV[1])
for i = 2, 3 do
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', now, ARGV[1]) == 1 then redis.call('EXPIRE', KEYS[i], 61) end
end
return 1
"""


class RealmLimiter:
    """acquire() a slot before each QBO request, release() it after."""

    def __init__(self, conn: redis.Redis, per_minute: int = PER_MINUTE, concurrent: int = CONCURRENT,
                 batches_per_minute: int = BATCHES_PER_MINUTE):
        self.conn = conn
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.batches_per_minute = batches_per_minute
        self._script = conn.register_script(_ACQUIRE)
        self._release = conn.register_script(_RELEASE)

    @staticmethod
    def _keys(realm: str) -> list[str]:
        return [f"ecomflux:qbo:rate:{realm}", f"ecomflux:qbo:conc:{realm}", f"ecomflux:qbo:pause:{realm}",
                f"ecomflux:qbo:batch:{realm}"]

    def acquire(self, realm: str, max_wait: float = MAX_WAIT_SECONDS, batch: bool = False) -> str:
        """A slot token, waiting at most max_wait; raises RealmBusy(retry_after) otherwise.

        A batch request also needs room in the realm's 40-batches-a-minute budget.
        """
        token = uuid.uuid4().hex
        deadline = time.monotonic() + max_wait
        while True:
            granted, wait = self._script(keys=self._keys(realm),
                                         args=[self.per_minute, self.concurrent, LEASE_SECONDS, token,
                                               self.batches_per_minute if batch else 0])
            if int(granted):
                return token
            wait = float(wait)
            remaining = deadline - time.monotonic()
            if wait > remaining:
                raise RealmBusy(retry_after=max(wait, 1.0))
            # Backoff before asking Redis again (budget refills continuously); bounded by max_wait.
            time.sleep(max(wait, 0.02))

    def headroom(self, realm: str) -> tuple[int, float]:
        """(requests left in the rolling minute, seconds until one more frees up); 0 left while paused."""
        rate_key, _, pause_key, _ = self._keys(realm)
        paused = self.conn.pttl(pause_key)
        if paused and paused > 0:
            return 0, paused / 1000
        now = time.time()
        used = self.conn.zcount(rate_key, now - 60, "+inf")
        oldest = self.conn.zrangebyscore(rate_key, now - 60, "+inf", start=0, num=1, withscores=True)
        return max(0, self.per_minute - used), (oldest[0][1] + 60 - now) if oldest else 0.0

    def batch_headroom(self, realm: str) -> tuple[int, float]:
        """(batch requests the realm may start now, seconds until one more may): within the batch budget,
        the request budget and the calls in flight; 0 while paused after a 429."""
        rate_key, conc_key, pause_key, batch_key = self._keys(realm)
        paused = self.conn.pttl(pause_key)
        if paused and paused > 0:
            return 0, paused / 1000
        now = time.time()
        with self.conn.pipeline() as pipe:
            for key in (batch_key, rate_key):
                pipe.zcount(key, now - 60, "+inf")
                pipe.zrangebyscore(key, now - 60, "+inf", start=0, num=1, withscores=True)
            pipe.zcount(conc_key, now, "+inf")
            batches, oldest_batch, used, oldest_rate, running = pipe.execute()
        left = min(self.batches_per_minute - batches, self.per_minute - used, self.concurrent - running)
        if left > 0:
            return left, 0.0
        waits = [0.05]  # a call in flight ends soon
        for count, limit, oldest in ((batches, self.batches_per_minute, oldest_batch),
                                     (used, self.per_minute, oldest_rate)):
            if count >= limit and oldest:
                waits.append(oldest[0][1] + 60 - now)
        return 0, max(waits)

    def release(self, realm: str, token: str) -> None:
        """The request has ended: its concurrency slot frees, and it counts in the minute from now."""
        rate_key, conc_key, _pause, batch_key = self._keys(realm)
        self._release(keys=[conc_key, rate_key, batch_key], args=[token])

    def pause(self, realm: str, seconds: int = 60) -> None:
        """Stop every worker from calling this realm for `seconds` (after a 429)."""
        self.conn.set(f"ecomflux:qbo:pause:{realm}", "1", ex=seconds)
