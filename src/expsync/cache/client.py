"""Which Redis client a ``EXPSYNC_REDIS_URL`` gets, and the check of that URL.

Kept apart from :mod:`expsync.cache.refresh` (which reads the outbox through SQLAlchemy): a
``plan`` against Postgres checks the URL up front without importing SQLAlchemy or redis-py.
"""

from __future__ import annotations

from typing import Any, Final

from expsync.cache import resp
from expsync.errors import CachePending, ConfigError

REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


def check_url(url: str) -> None:
    """Refuse a malformed ``EXPSYNC_REDIS_URL`` up front (exit 3), before anything is written:
    discovering it after the database commit would leave a refresh nobody can finish."""
    if not url.startswith(REDIS_SCHEMES):
        raise ConfigError("EXPSYNC_REDIS_URL must start with " + ", ".join(REDIS_SCHEMES))
    try:
        if resp.parse(url) is not None:
            return  # a plain URL: checked without importing redis-py
        from redis.connection import parse_url

        parse_url(url.replace("+cluster", "", 1))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"EXPSYNC_REDIS_URL is not a valid Redis URL ({type(e).__name__})") from None


def connect(url: str) -> Any:
    """A Redis client for ``url``: :class:`~expsync.cache.resp.RespClient` for a plain URL,
    redis-py for the others; ``redis+cluster://`` / ``rediss+cluster://`` mean Redis Cluster.

    Raises :class:`ConfigError` for a malformed URL and :class:`CachePending` when a cluster
    client cannot reach any node (it discovers the slots on creation)."""
    check_url(url)
    plain = resp.parse(url)
    if plain is not None:
        return resp.RespClient(plain)
    import redis

    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        from redis.cluster import RedisCluster

        try:
            return RedisCluster.from_url(url.replace("+cluster", "", 1), socket_timeout=5, socket_connect_timeout=5)
        except Exception as e:  # any failure to reach the cluster: the refresh stays pending
            raise CachePending(f"Redis Cluster unreachable ({type(e).__name__}); run `expsync cache sync` later") from None
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


__all__ = ["REDIS_SCHEMES", "check_url", "connect"]
