"""The member service's own settings, read from Settings.extra (OMNI_MEMBER_* variables)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from libs.config import ConfigError, Settings

log = logging.getLogger(__name__)

# Only for a laptop: any deployment sets OMNI_MEMBER_CODE_KEY (a startup warning says so).
LOCAL_CODE_KEY = "omni-local-member-code-key-not-for-production"


@dataclass(frozen=True)
class MemberConfig:
    code_key: bytes
    code_ttl: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> MemberConfig:
        key = settings.extra.get("OMNI_MEMBER_CODE_KEY", "")
        if not key:
            log.warning("OMNI_MEMBER_CODE_KEY is not set; using the local development key")
            key = LOCAL_CODE_KEY
        raw_ttl = settings.extra.get("OMNI_MEMBER_CODE_TTL_SECONDS", "") or "60"
        try:
            ttl = int(raw_ttl)
        except ValueError as exc:
            raise ConfigError(
                f"OMNI_MEMBER_CODE_TTL_SECONDS must be an integer: {raw_ttl!r}"
            ) from exc
        if not 5 <= ttl <= 600:
            raise ConfigError("OMNI_MEMBER_CODE_TTL_SECONDS must be between 5 and 600")
        return cls(key.encode(), timedelta(seconds=ttl))
