"""Who is calling and what they may do: identities, scopes, tenants, trust file, interceptor.

- :mod:`.model`: identities, scopes and tenants, and the rules (pure);
- :mod:`.trustfile`: the TOML trust file and hashed tokens;
- :mod:`.interceptor`: authentication, scope checks and quotas on every call.

``python -m suppression.auth new-token NAME`` makes a token and its trust-file line.
"""

from __future__ import annotations

from suppression.auth.interceptor import (
    RETRY_AFTER_KEY,
    UNAUTHENTICATED_LABEL,
    AuthInterceptor,
)
from suppression.auth.model import (
    AuthError,
    Identity,
    PermissionDeniedError,
    Scope,
    Tenant,
    UnauthenticatedError,
    actor_for,
    authorize,
    current_identity,
    is_public,
    method_scopes,
    required_scopes,
    resolve_lists,
    resolve_write_list,
    use_identity,
    visible_lists,
)
from suppression.auth.trustfile import (
    DEFAULT_QUOTA,
    TrustConfig,
    TrustStore,
    hash_token,
    load_trust_file,
    new_token,
    parse_trust_config,
    verify_token,
)

__all__ = [
    "DEFAULT_QUOTA",
    "RETRY_AFTER_KEY",
    "UNAUTHENTICATED_LABEL",
    "AuthError",
    "AuthInterceptor",
    "Identity",
    "PermissionDeniedError",
    "Scope",
    "Tenant",
    "TrustConfig",
    "TrustStore",
    "UnauthenticatedError",
    "actor_for",
    "authorize",
    "current_identity",
    "hash_token",
    "is_public",
    "load_trust_file",
    "method_scopes",
    "new_token",
    "parse_trust_config",
    "required_scopes",
    "resolve_lists",
    "resolve_write_list",
    "use_identity",
    "verify_token",
    "visible_lists",
]
