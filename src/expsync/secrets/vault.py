"""``vault:MOUNT/PATH#FIELD``: HashiCorp Vault / OpenBao KV version 2 (spec §3).

``MOUNT`` is the KV v2 mount (``secret`` in a dev server), ``PATH`` the secret's path inside it
(no ``data/`` segment: the KV v2 API adds it), ``FIELD`` the key inside the secret's data.
Each path is read once, however many references use it.

Configuration from ``ctx.environ``:

- ``VAULT_ADDR`` (required), ``VAULT_NAMESPACE`` (Enterprise/HCP), ``VAULT_CACERT`` or
  ``VAULT_SKIP_VERIFY`` for TLS;
- authentication: ``VAULT_TOKEN``; or AppRole with ``VAULT_ROLE_ID`` + ``VAULT_SECRET_ID``
  logging in at ``VAULT_APPROLE_MOUNT`` (default ``approle``), the usual choice for CI.

The latest version is read and a deleted latest version counts as not found
(``raise_on_deleted_version=True``), so a key deleted in Vault never silently falls back to
older material. A 403 on a read is checked once with ``auth/token/lookup-self``: Vault
answers a rejected token and a path the policy does not cover alike. hvac is an optional dependency (``pip install 'expsync[vault]'``), imported only
when a ``vault:`` reference is resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from expsync.model import SecretRef
from expsync.urls import origin
from expsync.secrets.base import (
    ACCESS_DENIED,
    NOT_FOUND,
    UNAVAILABLE,
    Failure,
    Outcome,
    ResolveContext,
    all_failed,
    field_value,
)

if TYPE_CHECKING:
    import hvac

INSTALL_HINT: Final = "install the Vault extra: pip install 'expsync[vault]'"
TIMEOUT_SECONDS: Final = 15
_TRUE: Final = frozenset({"1", "true", "yes", "on"})


class _StoreDown(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class VaultResolver:
    """Resolves ``vault:`` references against one Vault server (``VAULT_ADDR``)."""

    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        try:
            import hvac  # noqa: F401
        except ImportError:
            return all_failed(refs, Failure(UNAVAILABLE, "hvac is not installed", hint=INSTALL_HINT))
        try:
            client = _login(ctx)
            # a token from the environment may be invalid; one AppRole just issued is not
            token_checked = not ctx.environ.get("VAULT_TOKEN")
            documents: dict[str, Mapping[str, object] | Failure] = {}
            for locator in dict.fromkeys(ref.locator for ref in refs):
                documents[locator] = doc = _read(client, locator, ctx)
                if isinstance(doc, Failure) and doc.code == ACCESS_DENIED and not token_checked:
                    _check_token(client)
                    token_checked = True
        except _StoreDown as down:
            return all_failed(refs, down.failure)
        out: dict[SecretRef, Outcome] = {}
        for ref in refs:
            doc = documents[ref.locator]
            out[ref] = doc if isinstance(doc, Failure) else field_value(ref, doc, f"Vault secret {ref.locator}")
        return out


def _login(ctx: ResolveContext) -> hvac.Client:
    import hvac
    import hvac.exceptions as hexc
    import requests

    env = ctx.environ
    addr = env.get("VAULT_ADDR")
    if not addr:
        raise _StoreDown(Failure(UNAVAILABLE, "VAULT_ADDR is not set", hint="set VAULT_ADDR to the Vault server URL"))
    verify: bool | str = True
    if env.get("VAULT_CACERT"):
        verify = env["VAULT_CACERT"]
    elif env.get("VAULT_SKIP_VERIFY", "").lower() in _TRUE:
        verify = False
    token = env.get("VAULT_TOKEN")
    role_id, secret_id = env.get("VAULT_ROLE_ID"), env.get("VAULT_SECRET_ID")
    # token="" (not None) stops hvac from falling back to os.environ or ~/.vault-token behind our back.
    client = hvac.Client(
        url=addr,
        token=token or "",
        verify=verify,
        timeout=TIMEOUT_SECONDS,
        namespace=env.get("VAULT_NAMESPACE") or None,
    )
    if token:
        ctx.register(token)
        return client
    if not (role_id and secret_id):
        raise _StoreDown(
            Failure(
                UNAVAILABLE,
                "no Vault credentials: neither VAULT_TOKEN nor VAULT_ROLE_ID and VAULT_SECRET_ID are set",
                hint="set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole",
            )
        )
    ctx.register(secret_id)
    mount = env.get("VAULT_APPROLE_MOUNT") or "approle"
    try:
        resp = client.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=mount, use_token=True)
    except (hexc.InvalidRequest, hexc.Forbidden, hexc.Unauthorized, hexc.InvalidPath):
        raise _StoreDown(
            Failure(
                UNAVAILABLE,
                f"Vault AppRole login at auth/{mount} failed",
                hint="check VAULT_ROLE_ID, VAULT_SECRET_ID and VAULT_APPROLE_MOUNT",
            )
        ) from None
    except (hexc.VaultError, requests.RequestException) as exc:
        raise _StoreDown(_unreachable(addr, exc)) from None
    ctx.register(str(resp.get("auth", {}).get("client_token", "")))
    return client


def _read(client: hvac.Client, locator: str, ctx: ResolveContext) -> Mapping[str, object] | Failure:
    import hvac.exceptions as hexc
    import requests

    mount, _, path = locator.partition("/")
    what = f"Vault secret {locator}"
    try:
        resp = client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
    except hexc.InvalidPath:
        return Failure(NOT_FOUND, f"{what} does not exist (or its latest version is deleted)")
    except hexc.Forbidden:
        return Failure(ACCESS_DENIED, f"{what} cannot be read with the Vault token in use (permission denied)")
    except hexc.Unauthorized:
        raise _StoreDown(Failure(UNAVAILABLE, "Vault rejected the token", hint="check VAULT_TOKEN")) from None
    except (hexc.VaultError, requests.RequestException) as exc:
        raise _StoreDown(_unreachable(client.url, exc)) from None
    data = (resp.get("data") or {}).get("data")
    if not isinstance(data, dict):
        return Failure(NOT_FOUND, f"{what} has no data (is {mount} a KV version 2 mount?)")
    for value in data.values():
        if isinstance(value, str):
            ctx.register(value)
    return data


def _check_token(client: hvac.Client) -> None:
    """Raise _StoreDown when the token itself is rejected.

    Vault answers an invalid, expired or revoked token with the same 403 "permission denied" as
    a policy that does not cover the path. Every token may look itself up (the ``default``
    policy), so a denied lookup means the token is no good: one call, on the first denial only.
    """
    import hvac.exceptions as hexc
    import requests

    try:
        client.auth.token.lookup_self()
    except (hexc.Forbidden, hexc.Unauthorized):
        raise _StoreDown(
            Failure(
                UNAVAILABLE,
                "Vault rejected VAULT_TOKEN (invalid, expired or revoked: it cannot even look itself up)",
                hint="check VAULT_TOKEN, or the step that logs in to Vault",
            )
        ) from None
    except (hexc.VaultError, requests.RequestException) as exc:
        raise _StoreDown(_unreachable(client.url, exc)) from None


def _unreachable(addr: str, exc: Exception) -> Failure:
    import hvac.exceptions as hexc

    if isinstance(exc, hexc.VaultError):
        why = f"Vault answered {type(exc).__name__}"
    else:
        why = f"Vault at {origin(addr) or 'VAULT_ADDR'} cannot be reached ({type(exc).__name__})"
    return Failure(UNAVAILABLE, why, hint="check VAULT_ADDR, the network and the Vault server's status")
