"""``aws-sm:SECRET_ID[#FIELD]``: AWS Secrets Manager (spec §3).

``SECRET_ID`` is a secret name or ARN. Without ``#FIELD`` the key is the whole
``SecretString``; with it, the ``SecretString`` must be a JSON object and the field's value
(a string) is the key - the usual layout when one secret holds several partner keys.

Configuration comes from ``ctx.environ`` and is passed to boto3 explicitly:

- region: ``AWS_REGION``, else ``AWS_DEFAULT_REGION``;
- credentials: ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``) when
  both are set - which is also what the GitHub OIDC action ``configure-aws-credentials`` exports
  - else ``AWS_PROFILE``, else boto3's default chain (shared config files, web identity,
  container and instance roles);
- ``EXPSYNC_AWS_ENDPOINT_URL``: another endpoint (a VPC endpoint, LocalStack, moto).

Each secret id is fetched once however many references use it, in ``BatchGetSecretValue``
calls of at most 20 ids (the API's limit), so a plan over hundreds of variants costs a handful
of round trips. When the batch call is refused (IAM policies often grant only
``secretsmanager:GetSecretValue``; ``BatchGetSecretValue`` needs its own permission) or the SDK
predates it, the remaining ids are fetched one by one with ``GetSecretValue``.

boto3 is an optional dependency (``pip install 'expsync[aws]'``), imported only when an
``aws-sm:`` reference is resolved.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from expsync.model import SecretRef
from expsync.secrets.base import (
    ACCESS_DENIED,
    EMPTY,
    NOT_FOUND,
    UNAVAILABLE,
    Failure,
    Outcome,
    ResolveContext,
    all_failed,
    pick_field,
    text_value,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

    ClientFactory: TypeAlias = Callable[[Mapping[str, str]], BaseClient]

log = logging.getLogger(__name__)

#: BatchGetSecretValue accepts at most 20 ids in SecretIdList.
BATCH_SIZE: Final = 20
INSTALL_HINT: Final = "install the AWS extra: pip install 'expsync[aws]'"

_XML_CODE: Final = re.compile(r"<Code>([A-Za-z0-9.]{1,64})</Code>")

#: Error codes meaning "these credentials are no good": every further call would fail the same.
_CREDENTIAL_ERRORS: Final = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)

#: Error codes meaning "the service is throttling or failing" (after botocore's own retries):
#: reading each secret on its own would only multiply the calls to a throttled API.
_BUSY_ERRORS: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)

#: Per-secret error codes (from a ClientError or a BatchGetSecretValue ``Errors`` entry).
_SECRET_ERRORS: Final[Mapping[str, tuple[str, str]]] = {
    "ResourceNotFoundException": (NOT_FOUND, "does not exist"),
    "AccessDeniedException": (ACCESS_DENIED, "cannot be read with the AWS credentials in use (access denied)"),
    "AccessDenied": (ACCESS_DENIED, "cannot be read with the AWS credentials in use (access denied)"),
    "DecryptionFailure": (ACCESS_DENIED, "cannot be decrypted: the credentials lack kms:Decrypt on its KMS key"),
    # What AWS answers for a secret scheduled for deletion.
    "InvalidRequestException": (
        NOT_FOUND,
        "cannot be read now (InvalidRequestException; usually scheduled for deletion)",
    ),
}


class _StoreDown(Exception):
    """Internal: the endpoint or the credentials are unusable; stop and fail what is left."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def default_client(environ: Mapping[str, str]) -> BaseClient:
    """A Secrets Manager client configured only from ``environ`` (see the module docstring)."""
    import boto3
    from botocore.config import Config

    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    explicit = bool(key_id and secret)
    session = boto3.session.Session(
        aws_access_key_id=key_id if explicit else None,
        aws_secret_access_key=secret if explicit else None,
        aws_session_token=(environ.get("AWS_SESSION_TOKEN") or None) if explicit else None,
        region_name=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        profile_name=None if explicit else (environ.get("AWS_PROFILE") or None),
    )
    config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})
    return session.client("secretsmanager", endpoint_url=environ.get("EXPSYNC_AWS_ENDPOINT_URL") or None, config=config)


#: botocore DEBUG records that carry credentials or secrets, by logger and message prefix:
#: response bodies (a GetSecretValue body *is* the secret; an STS body holds the assumed role's
#: keys), request dumps (an AssumeRoleWithWebIdentity body holds the OIDC token; the headers hold
#: a session token obtained from STS, which the redactor never saw) and SigV4 signing details
#: (a signature lets anyone replay the signed request, GetSecretValue included, for minutes).
_DUMPS: Final[Mapping[str, tuple[str, ...]]] = {
    "botocore.parsers": ("Response body",),
    "botocore.endpoint": ("Making request for", "Sending http request"),
    "botocore.auth": ("CanonicalRequest", "StringToSign", "String to sign", "Signature"),
}


class _DropDumps(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self._prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._prefixes)


@contextmanager
def _no_dump_logging() -> Iterator[None]:
    """Drop botocore's DEBUG dumps (:data:`_DUMPS`) at their source loggers while we talk to
    AWS (credentials are resolved lazily, so an STS call happens in here too): a redacting
    handler filter cannot help, because these values are logged before we know them, or never
    pass through expsync at all."""
    installed = [(logging.getLogger(name), _DropDumps(prefixes)) for name, prefixes in _DUMPS.items()]
    for logger, flt in installed:
        logger.addFilter(flt)
    try:
        yield
    finally:
        for logger, flt in installed:
            logger.removeFilter(flt)


class AwsResolver:
    """Resolves ``aws-sm:`` references. ``client_factory`` builds the boto3 client from the
    environment mapping; the default is :func:`default_client` (tests wrap it to count calls)."""

    def __init__(self, client_factory: ClientFactory | None = None) -> None:
        self._client_factory = client_factory

    def resolve(self, refs: Sequence[SecretRef], ctx: ResolveContext) -> dict[SecretRef, Outcome]:
        try:
            import botocore.exceptions as bexc
        except ImportError:
            return all_failed(refs, Failure(UNAVAILABLE, "boto3 is not installed", hint=INSTALL_HINT))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if ctx.environ.get(name):
                ctx.register(ctx.environ[name])
        try:
            client = (self._client_factory or default_client)(ctx.environ)
        except ImportError:
            return all_failed(refs, Failure(UNAVAILABLE, "boto3 is not installed", hint=INSTALL_HINT))
        except bexc.NoRegionError:
            return all_failed(
                refs, Failure(UNAVAILABLE, "no AWS region is configured", hint="set AWS_REGION (or AWS_DEFAULT_REGION)")
            )
        except bexc.BotoCoreError as exc:
            return all_failed(refs, Failure(UNAVAILABLE, f"the AWS client cannot be set up ({type(exc).__name__})"))

        ids = list(dict.fromkeys(ref.locator for ref in refs))
        with _no_dump_logging():
            documents = self._fetch(client, ids, ctx)
        out: dict[SecretRef, Outcome] = {}
        for ref in refs:
            doc, what = documents[ref.locator], f"secret {ref.locator}"
            if isinstance(doc, Failure):
                out[ref] = doc
            elif ref.field is not None:
                out[ref] = pick_field(ref, doc, what)
            else:
                out[ref] = text_value(doc, what)
        return out

    def _fetch(self, client: BaseClient, ids: list[str], ctx: ResolveContext) -> dict[str, str | Failure]:
        """SecretString (or a Failure) for every id: batched, with a per-id fallback."""
        import botocore.exceptions as bexc

        got: dict[str, str | Failure] = {}
        use_batch = hasattr(client, "batch_get_secret_value")
        try:
            for start in range(0, len(ids), BATCH_SIZE):
                chunk = ids[start : start + BATCH_SIZE]
                if use_batch:
                    try:
                        got.update(self._batch(client, chunk, ctx))
                    except bexc.ClientError as exc:
                        code = _error_code(exc)
                        if code in _CREDENTIAL_ERRORS:
                            raise _StoreDown(_credentials_failure(code)) from None
                        if _busy(code):
                            raise _StoreDown(_busy_failure(code)) from None
                        log.debug("BatchGetSecretValue refused (%s); falling back to GetSecretValue", code)
                        use_batch = False
                for secret_id in chunk:
                    if secret_id not in got:
                        got[secret_id] = self._get_one(client, secret_id, ctx)
        except _StoreDown as down:
            for secret_id in ids:
                got.setdefault(secret_id, down.failure)
        except bexc.BotoCoreError as exc:
            failure = _transport_failure(exc)
            for secret_id in ids:
                got.setdefault(secret_id, failure)
        return got

    def _batch(self, client: BaseClient, chunk: list[str], ctx: ResolveContext) -> dict[str, str | Failure]:
        """One BatchGetSecretValue call (following NextToken). Ids it cannot attribute are left
        out, so the caller fetches them one by one instead of guessing."""
        entries: list[Mapping[str, Any]] = []
        errors: list[Mapping[str, Any]] = []
        kwargs: dict[str, Any] = {"SecretIdList": chunk}
        while True:
            resp = client.batch_get_secret_value(**kwargs)
            entries.extend(resp.get("SecretValues", []))
            errors.extend(resp.get("Errors", []))
            if not resp.get("NextToken"):
                break
            kwargs["NextToken"] = resp["NextToken"]
        got: dict[str, str | Failure] = {}
        for secret_id in chunk:
            entry = next((e for e in entries if _matches(secret_id, e)), None)
            if entry is not None:
                got[secret_id] = _document(entry, secret_id, ctx)
                continue
            error = next((e for e in errors if e.get("SecretId") == secret_id), None)
            if error is not None:
                code = str(error.get("ErrorCode", ""))
                if code in _CREDENTIAL_ERRORS:
                    raise _StoreDown(_credentials_failure(code))
                got[secret_id] = _secret_failure(code)
        return got

    def _get_one(self, client: BaseClient, secret_id: str, ctx: ResolveContext) -> str | Failure:
        import botocore.exceptions as bexc

        try:
            entry = client.get_secret_value(SecretId=secret_id)
        except bexc.ClientError as exc:
            code = _error_code(exc)
            if code in _CREDENTIAL_ERRORS:
                raise _StoreDown(_credentials_failure(code)) from None
            if _busy(code):
                raise _StoreDown(_busy_failure(code)) from None
            return _secret_failure(code)
        return _document(entry, secret_id, ctx)


def _matches(secret_id: str, entry: Mapping[str, Any]) -> bool:
    """Does a returned entry answer the requested id (a name, an ARN, or a partial ARN)?"""
    arn = str(entry.get("ARN", ""))
    if secret_id in (entry.get("Name"), arn):
        return True
    # A partial ARN omits the "-XXXXXX" suffix AWS appends to every secret ARN.
    return secret_id.startswith("arn:") and arn.startswith(secret_id + "-") and len(arn) == len(secret_id) + 7


def _document(entry: Mapping[str, Any], secret_id: str, ctx: ResolveContext) -> str | Failure:
    value = entry.get("SecretString")
    if isinstance(value, str):
        ctx.register(value)
        return value
    if entry.get("SecretBinary") is not None:
        return Failure(
            EMPTY, f"secret {secret_id} holds binary data, not a SecretString", hint="store the key as a SecretString"
        )
    return Failure(EMPTY, f"secret {secret_id} has no value")


def _error_code(exc: Exception) -> str:
    """The AWS error code of a ClientError.

    When an error body is not the JSON the protocol expects (an XML error from a proxy, a VPC
    endpoint or an emulator), botocore reports the HTTP status as the code; the real code is
    then taken from the body's ``<Code>`` element. Only that token is used, never the text.
    """
    error = (getattr(exc, "response", None) or {}).get("Error", {})
    code = str(error.get("Code", ""))
    if code.isdigit():
        found = _XML_CODE.search(str(error.get("Message", "")))
        if found:
            return found.group(1)
    return code or "UnknownError"


def _busy(code: str) -> bool:
    """A throttling or server error (an error body that is not the protocol's JSON leaves the
    HTTP status as the code: see :func:`_error_code`)."""
    return code in _BUSY_ERRORS or (code.isdigit() and int(code) >= 500) or code == "429"


def _busy_failure(code: str) -> Failure:
    return Failure(UNAVAILABLE, f"AWS Secrets Manager answered {code} after retries (throttled or failing)",
                   hint="try again later; nothing else was read from it")


def _secret_failure(code: str) -> Failure:
    """Classify a per-secret error code. AWS's message text is deliberately not used."""
    known = _SECRET_ERRORS.get(code)
    if known is None:
        return Failure(UNAVAILABLE, f"AWS Secrets Manager answered {code}")
    return Failure(known[0], known[1])


def _credentials_failure(code: str) -> Failure:
    return Failure(
        UNAVAILABLE,
        f"AWS rejected the credentials in use ({code})",
        hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or the CI role",
    )


def _transport_failure(exc: Exception) -> Failure:
    import botocore.exceptions as bexc

    if isinstance(exc, bexc.NoCredentialsError | bexc.PartialCredentialsError):
        return Failure(
            UNAVAILABLE,
            "no AWS credentials found",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or assume a role (OIDC in CI)",
        )
    if isinstance(exc, bexc.EndpointConnectionError | bexc.ConnectTimeoutError | bexc.ReadTimeoutError):
        return Failure(
            UNAVAILABLE,
            f"AWS Secrets Manager cannot be reached ({type(exc).__name__})",
            hint="check the network, AWS_REGION and EXPSYNC_AWS_ENDPOINT_URL",
        )
    return Failure(UNAVAILABLE, f"AWS Secrets Manager call failed ({type(exc).__name__})")
