"""Per-shop inbox of delivery ids in Redis, so intake enqueues one RQ job per shop while one waits.

Intake used to enqueue one batch job per shop per group commit. Under a burst that was the largest
Python cost of the web processes (py-spy, PostgreSQL, 19.8 KB bodies: ~30% of their GIL samples in
RQ's job creation and persistence, more than the INSERT). Now a commit appends its ids to the shop's
inbox list and creates a job only when no inbox job is waiting for that shop; the job takes the whole
list when it starts. One Lua call does the append and the decision, so the common case under load is
a single round trip and no job at all.

Loss is impossible by construction: every id stays 'queued' in the database until a job claims it,
and the sweeper re-enqueues stale queued rows unless they wait in a live job or in the list of a shop
whose inbox job still waits (see sweeper.live_jobs). An inbox job that was lost, failed or started
without taking the list does not block the next commit: the commit creates a new job unless the
recorded one is still 'queued' in RQ.
"""

from __future__ import annotations

import uuid

import redis
from rq.job import Job

INBOX_PREFIX = "ecomflux:inbox:"  # shop domain -> list of delivery ids (arrival order)
INBOX_JOB_PREFIX = "ecomflux:inbox-job:"  # shop domain -> id of the inbox job that will take the list
INBOX_JOB_ID_PREFIX = "inbox-"
KEEP_SECONDS = 7 * 24 * 3600  # an uninstalled shop's keys go away by themselves

# For each shop i: KEYS[2i-1] its list, KEYS[2i] its job pointer. ARGV: RQ's job key prefix, keep seconds,
# then per shop its new job id, its id count and the ids. Returns per shop 1 when the caller must enqueue
# the job with the new id (the pointer now names it), else 0 (a job that will take the list waits).
_PUSH = """
local prefix, keep, at = ARGV[1], ARGV[2], 3
local out = {}
for i = 1, #KEYS / 2 do
  local list, pointer = KEYS[2 * i - 1], KEYS[2 * i]
  local job_id, count = ARGV[at], tonumber(ARGV[at + 1])
  redis.call('RPUSH', list, unpack(ARGV, at + 2, at + 1 + count))
  redis.call('EXPIRE', list, keep)
  at = at + 2 + count
  local current = redis.call('GET', pointer)
  if current and redis.call('HGET', prefix .. current, 'status') == 'queued' then
    out[i] = 0
  else
    redis.call('SET', pointer, job_id, 'EX', keep)
    out[i] = 1
  end
end
return out
"""

# KEYS: list, job pointer. ARGV: the starting job's id. Returns the ids, and clears the pointer when it
# names this job, so the next commit enqueues a new one.
_TAKE = """
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return ids
"""

_scripts: dict[str, redis.commands.core.Script] = {}


def _script(conn: redis.Redis, source: str):
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = conn.register_script(source)
    return script


def new_job_id() -> str:
    return INBOX_JOB_ID_PREFIX + uuid.uuid4().hex


def is_inbox_job(job_id: str) -> bool:
    return job_id.startswith(INBOX_JOB_ID_PREFIX)


def push(conn: redis.Redis, by_shop: dict[str, list[int]]) -> dict[str, str]:
    """Append each shop's ids to its inbox in one round trip; returns {shop: job id} for the jobs the
    caller must enqueue now (no inbox job of that shop is waiting)."""
    keys, args, job_ids = [], [Job.redis_job_namespace_prefix, KEEP_SECONDS], []
    for shop_domain, ids in by_shop.items():
        job_ids.append(new_job_id())
        keys += [INBOX_PREFIX + shop_domain, INBOX_JOB_PREFIX + shop_domain]
        args += [job_ids[-1], len(ids), *ids]
    flags = _script(conn, _PUSH)(keys=keys, args=args, client=conn)
    return {shop: job_id for (shop, job_id), flag in zip(zip(by_shop, job_ids), flags) if flag}


def take(conn: redis.Redis, shop_domain: str, job_id: str) -> list[int]:
    """The ids waiting in the shop's inbox, removed from it (the starting inbox job's share)."""
    ids = _script(conn, _TAKE)(keys=[INBOX_PREFIX + shop_domain, INBOX_JOB_PREFIX + shop_domain],
                               args=[job_id], client=conn)
    return [int(i) for i in ids]


def waiting_ids(conn: redis.Redis, shop_domain: str) -> list[int]:
    """The ids in the shop's inbox now (not removed)."""
    return [int(i) for i in conn.lrange(INBOX_PREFIX + shop_domain, 0, -1)]
