-- Who runs each background job (the re-encryption job, the backup schedule) while several
-- servers share the database: the holder named by `holder` until `expires_at_ms`, in
-- milliseconds of the database's own clock, so that servers whose clocks disagree still agree
-- on when a lease has run out. A holder renews it as it works; when it dies, the lease runs
-- out and another server takes the job over.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
