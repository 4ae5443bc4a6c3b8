"""Failures of the outside world, as the application sees them. Adapters translate driver errors into these."""


class StorageUnavailable(Exception):
    """The database cannot be reached or did not answer in time."""


class SchemaNotMigrated(StorageUnavailable):
    """The database answers but its schema is missing or older than the code: ``workcast migrate`` was not run."""


class DuplicateExternalId(Exception):
    """Another profile took this external id a moment ago (two provisioning calls raced)."""


class InvalidToken(Exception):
    """Missing, malformed, tampered, expired or not for us. The message is safe to show the client."""


class KeysUnavailable(Exception):
    """The auth server's keys cannot be had and none are cached: no token can be checked right now."""


class BrokerUnavailable(Exception):
    """The real-time broker cannot carry messages right now."""


class LimiterUnavailable(Exception):
    """The shared rate limiter (Redis) cannot answer: requests are let through (availability first)."""


class RateLimited(Exception):
    """Over a rate limit: try again after ``retry_after`` seconds."""

    def __init__(self, group: str, retry_after: float) -> None:
        super().__init__(f"too many requests ({group}): try again in {retry_after:.1f} s")
        self.group, self.retry_after = group, retry_after
