"""API keys: Bearer keys for inference, a separate admin key for model operations.

Keys come from the environment or mounted files, are compared in constant time, and never
appear in logs or error messages.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from service.settings import Settings


def _read_keys(inline: str, file: Path | None, separator: str | None) -> list[str]:
    keys = [k.strip() for k in inline.split(separator)] if separator else [inline.strip()]
    if file is not None:
        keys += [line.strip() for line in Path(file).read_text().splitlines()]
    return [k for k in keys if k and not k.startswith("#")]


class Keys:
    def __init__(self, settings: Settings):
        self.api = [k.encode() for k in _read_keys(settings.api_keys, settings.api_keys_file, ",")]
        self.admin = [k.encode() for k in _read_keys(settings.admin_key, settings.admin_key_file, None)]

    @property
    def inference_open(self) -> bool:
        """No inference keys: anyone who can reach the port may infer (so bind loopback only)."""
        return not self.api

    @staticmethod
    def _matches(candidate: str, keys: list[bytes]) -> bool:
        given = candidate.encode()
        found = False
        for key in keys:  # no early exit: the time taken does not depend on which key matched
            found |= hmac.compare_digest(given, key)
        return found

    def check(self, authorization: str | None, admin: bool) -> tuple[int, str] | None:
        """None if the request may pass, else (status, reason). Without any keys configured the
        service is bound to loopback and inference is open; admin routes still need the admin key."""
        keys = self.admin if admin else self.api
        if not keys:
            return (403, "model operations are disabled: no admin key is configured") if admin else None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, "missing Bearer token: send 'Authorization: Bearer <key>'"
        if not self._matches(token.strip(), keys):
            return 403, "the key is not valid for this route"
        return None
