"""apply stage: execute a plan in one database transaction.

:func:`expsync.apply.run.apply` takes the apply lock, re-plans inside the transaction, refuses
on errors or a stale saved plan, then :func:`expsync.apply.execute.execute` runs exactly
``Plan.ops`` in order (consecutive ops of one type as one statement batch), enqueues the cache
keys and writes the audit row. Nothing is written unless everything succeeds.
"""
