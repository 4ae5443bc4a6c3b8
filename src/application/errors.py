"""Failures of the outside world, as the application sees them. Adapters translate driver errors into these."""


class StorageUnavailable(Exception):
    """The database cannot be reached or did not answer in time."""


class SchemaNotMigrated(StorageUnavailable):
    """The database answers but its schema is missing or older than the code: ``workcast migrate`` was not run."""


class DuplicateExternalId(Exception):
    """Another profile took this external id a moment ago (two provisioning calls raced)."""


class BrokerUnavailable(Exception):
    """The real-time broker cannot carry messages right now."""
