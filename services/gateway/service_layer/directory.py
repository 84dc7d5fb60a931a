"""Who may call: credentials (with their secret) and their channels, read from a small
in-process cache so that a signature is checked without a database round trip.

What the cache may hold stale, and for how long:
- whether a key is revoked or its channel suspended: never relied on alone. The statement
  that opens every request (store payload + claim nonce, adapters/payload_store.py; or the
  nonce claim of a read, adapters/security_store.py) re-checks both in the database, so a
  revoked key or a suspended channel is refused from the first request after the commit on
  every replica. The cache only lets a request that is bound to be refused be refused
  earlier (a cached revocation or suspension answers at once);
- a channel's or key's rate limit settings: up to ``ttl_seconds`` (default 5 s,
  OMNI_GATEWAY_CONFIG_TTL_SECONDS); the replica that made the change forgets at once.
Keys never change otherwise (no secret rotation: a new key is issued, the old revoked).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from libs.pg import Pg
from services.gateway.adapters import channel_store
from services.gateway.domain.channels import Channel, CredentialRow

DEFAULT_TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class KnownKey:
    credential: CredentialRow
    secret: str
    channel: Channel


class Directory:
    def __init__(self, pg: Pg, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.pg = pg
        self.ttl_seconds = ttl_seconds
        self._keys: OrderedDict[str, tuple[float, KnownKey]] = OrderedDict()

    async def key(self, key_id: str) -> KnownKey | None:
        """The key, its secret and channel; None when there is no such key. Unknown keys
        are not cached (a forged key id costs one primary-key lookup, after the payload
        store that every forged request costs anyway)."""
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        found = await channel_store.load_key_and_channel(self.pg, key_id)
        if found is None:
            self._keys.pop(key_id, None)
            return None
        known = KnownKey(*found)
        self._keys[key_id] = (now, known)
        self._keys.move_to_end(key_id)
        while len(self._keys) > MAX_ENTRIES:
            self._keys.popitem(last=False)
        return known

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    def forget_channel(self, channel_id: str) -> None:
        for key_id in [
            k for k, (_, v) in self._keys.items() if v.channel.config.channel_id == channel_id
        ]:
            self._keys.pop(key_id, None)
