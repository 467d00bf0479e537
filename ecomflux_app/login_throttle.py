"""Sign-in throttling in Redis: exponential delays per account, per client address and per pair, capped at minutes.

Every attempt is counted before the password is checked (one Lua script on Redis' clock), so parallel
guesses cannot slip past the count. After a few free attempts the next one must wait 5, 10, 20, ...
seconds, never more than the cap: an attacker is slowed to a handful of guesses per account per
hour, and a staff member whose account is being guessed at waits minutes, never hours. The account
key is the typed email, known or not, so an unknown email is throttled exactly like a real one.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

import redis

from . import runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limit:
    prefix: str
    free: int  # attempts without a delay; the last of them starts the first one
    cap: int  # seconds: the longest a single delay can be
    base: int = 5  # seconds: the first delay, doubled with every further attempt


# The pair (this email from this address) is what a staff member mistyping hits; the account limit
# is looser and capped lower, so guesses spread over many addresses still cannot shut a person out.
PAIR = Limit("pair", free=5, cap=300)
ACCOUNT = Limit("account", free=20, cap=60)
ADDRESS = Limit("address", free=30, cap=300)
QUIET_RESET_SECONDS = 3600  # counters forget an hour after the last attempt

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local wait = 0
for i, key in ipairs(KEYS) do
  local untl = tonumber(redis.call('HGET', key, 'until') or '0')
  if untl - now > wait then wait = untl - now end
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  local n = redis.call('HINCRBY', key, 'n', 1)
  local free, base, cap = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  if n >= free then
    local delay = math.min(cap, base * 2 ^ (n - free))
    redis.call('HSET', key, 'until', tostring(now + delay))
  end
  redis.call('EXPIRE', key, tonumber(ARGV[#ARGV]))
end
return '0'
"""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def keys(email: str, address: str | None) -> dict[Limit, str]:
    address = address or "-"
    return {PAIR: f"ecomflux:login:{PAIR.prefix}:{_digest(email, address)}",
            ACCOUNT: f"ecomflux:login:{ACCOUNT.prefix}:{_digest(email)}",
            ADDRESS: f"ecomflux:login:{ADDRESS.prefix}:{_digest(address)}"}


def reserve(email: str, address: str | None) -> int:
    """Count a sign-in attempt; 0 when it may go ahead, else the seconds to wait (nothing is counted)."""
    names = keys(email, address)
    args: list[int] = []
    for limit in names:
        args += [limit.free, limit.base, limit.cap]
    try:
        conn = runtime.redis()
        wait = float(conn.eval(_RESERVE, len(names), *names.values(), *args, QUIET_RESET_SECONDS))
    except redis.RedisError as exc:
        # Fail open: Redis down must not lock every staff member out; argon2 still makes guesses slow.
        log.warning("sign-in throttle unavailable, attempt not counted: %s", type(exc).__name__)
        return 0
    return int(math.ceil(wait))


def succeeded(email: str, address: str | None) -> None:
    """A right password clears this account's counts; the address keeps its own (minus this attempt)."""
    names = keys(email, address)
    try:
        conn = runtime.redis()
        conn.delete(names[PAIR], names[ACCOUNT])
        if conn.hincrby(names[ADDRESS], "n", -1) < 0:
            conn.hset(names[ADDRESS], "n", 0)
    except redis.RedisError:
        pass
