"""cache stage: keep the gateway's Redis routing cache in step with the database.

Apply writes the keys to refresh into an outbox table in its own transaction
(:func:`expsync.cache.refresh.enqueue`); after commit :func:`expsync.cache.refresh.drain`
deletes the per-public-id keys and rewrites the membership key, under a lock, until the outbox
is empty. See :mod:`expsync.cache.refresh` for the protocol.
"""
