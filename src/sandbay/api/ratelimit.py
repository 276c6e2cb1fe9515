"""Rate limits per API key and per organization: token buckets kept in this
process's memory (each replica allows the configured rate on its own), refilled
continuously; a request that finds a bucket empty is a 429 with `Retry-After`."""

import math
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second up to `burst`; one request takes one token."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.stamp = float(self.burst), time.monotonic()

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: there is one now; it is not taken)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass(slots=True)
class RateLimiter:
    """One bucket per key and one per organization; a request takes from both, only
    when both have a token. A rate of 0 turns that bucket off. Buckets of callers
    idle long enough to be full again are forgotten, so memory follows the active
    callers."""

    key_rate: float
    key_burst: int
    org_rate: float
    org_burst: int
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    swept: float = field(default_factory=time.monotonic)

    def take(self, key_id: str | None, org_id: str | None) -> int:
        """0 when the request may go on (a token taken from each bucket), else the
        whole seconds to wait (for `Retry-After`)."""
        now = time.monotonic()
        if now - self.swept > 60:
            self._sweep(now)
        chosen = [
            b
            for b in (
                self._bucket(f"k:{key_id}", self.key_rate, self.key_burst) if key_id else None,
                self._bucket(f"o:{org_id}", self.org_rate, self.org_burst) if org_id else None,
            )
            if b is not None
        ]
        wait = max((b.wait(now) for b in chosen), default=0.0)
        if wait > 0:
            return max(1, math.ceil(wait))
        for bucket in chosen:
            bucket.tokens -= 1
        return 0

    def _bucket(self, name: str, rate: float, burst: int) -> TokenBucket | None:
        if rate <= 0:
            return None
        bucket = self.buckets.get(name)
        if bucket is None:
            bucket = self.buckets[name] = TokenBucket(rate, burst)
        return bucket

    def _sweep(self, now: float) -> None:
        self.swept = now
        full = [
            n for n, b in self.buckets.items() if b.tokens + (now - b.stamp) * b.rate >= b.burst
        ]
        for name in full:
            del self.buckets[name]
