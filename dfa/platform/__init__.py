"""Settings, database, errors, idempotency, parties and the HTTP plumbing every module shares."""
