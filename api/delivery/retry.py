"""When to try a failed message again: exponential backoff with a cap and a maximum number of
attempts, then the dead letters. Pure: the outbox worker stores attempts and next_attempt_at and
asks `decide` after each failure; `deliver_with_retry` is the same loop in one process (tests, CLI)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass

from .base import DeliveryError, DeliveryResult


@dataclass(frozen=True)
class RetryDecision:
    retry: bool  # False: dead letter (give up, a person looks at it)
    delay_seconds: float | None  # wait before the next attempt, when retry
    next_attempt_at: dt.datetime | None  # now + delay, when retry and a `now` was given
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """Attempt n (1-based) that fails waits min(cap, base × factor^(n−1)) before attempt n+1, or what the
    receiver asked for (Retry-After) when that is longer, up to the cap. `jitter` (0…1) shortens each delay
    by up to that fraction, by an amount fixed per message (a hash of its key), so a burst of messages
    that failed together does not come back together, yet a decision is repeatable."""

    base_seconds: float = 60.0
    factor: float = 2.0
    cap_seconds: float = 3600.0
    max_attempts: int = 8
    jitter: float = 0.0

    def __post_init__(self):
        if not (
            self.base_seconds > 0
            and self.factor >= 1
            and self.cap_seconds >= self.base_seconds
            and self.max_attempts >= 1
            and 0 <= self.jitter < 1
        ):
            raise ValueError(f"invalid retry policy {self}")

    def delay(self, attempt: int, key: str = "") -> float:
        """The wait after the `attempt`-th failed attempt."""
        if attempt < 1:
            raise ValueError("attempts count from 1")
        # exponent capped: factor ** 10_000 would overflow a float long after the cap is reached
        raw = min(self.cap_seconds, self.base_seconds * self.factor ** min(attempt - 1, 1000))
        if self.jitter and key:
            u = int.from_bytes(hashlib.sha256(f"{key}:{attempt}".encode()).digest()[:8], "big") / 2**64
            raw *= 1 - self.jitter * u
        return raw

    def decide(
        self, attempts: int, error: DeliveryError, *, key: str = "", now: dt.datetime | None = None
    ) -> RetryDecision:
        """After `attempts` attempts, the last of which raised `error`: retry when, or dead letter."""
        if not error.retryable:
            return RetryDecision(False, None, None, f"not retryable: {error.message}")
        if attempts >= self.max_attempts:
            return RetryDecision(False, None, None, f"gave up after {attempts} attempts: {error.message}")
        wait = self.delay(attempts, key)
        if error.retry_after is not None:
            wait = min(self.cap_seconds, max(wait, error.retry_after))
        return RetryDecision(
            True,
            wait,
            now + dt.timedelta(seconds=wait) if now is not None else None,
            f"attempt {attempts} failed: {error.message}",
        )


class DeadLetter(Exception):
    """A message given up on: its last error and how many attempts were made."""

    def __init__(self, error: DeliveryError, attempts: int, reason: str):
        super().__init__(reason)
        self.error, self.attempts, self.reason = error, attempts, reason


def deliver_with_retry(notifier, message, policy: RetryPolicy, *, sleep=time.sleep) -> tuple[DeliveryResult, int]:
    """Deliver, waiting out the policy's delays between attempts: (result, attempts), or DeadLetter."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return notifier.deliver(message), attempts
        except DeliveryError as error:
            decision = policy.decide(attempts, error, key=message.idempotency_key)
            if not decision.retry:
                raise DeadLetter(error, attempts, decision.reason) from error
            sleep(decision.delay_seconds)
