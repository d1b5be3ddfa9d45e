"""expsync: a declarative GitOps reconciler for model experiments in an AI gateway.

Pipeline (imports point one way, cli -> stages):

    desired/ YAML files -> DesiredState (+ diagnostics)          (no I/O but reading files)
    secrets/ SecretRef -> Secret                                 (env, file, AWS SM, Vault)
    state/   database -> ActualState                             (constant number of queries)
    plan/    (DesiredState, ActualState, key comparisons) -> Plan (pure)
    render/  Plan -> str                                         (text, json, markdown)
    apply/   Plan -> one DB transaction                          (+ outbox rows)
    cache/   outbox -> Redis                                     (converges across crashes)

Every stage consults ``rules.py`` (imports only ``model``): statuses, transitions and their
guards, the edit matrix, protective moves, the release rule, routing statuses and the
gateway's variant picker, each stated once.
"""

__version__ = "0.1.0"
