-- Field encryption: personal columns of staff accounts, the admin's policy per table and per
-- column, the re-encryption job that rewrites values to a new policy, and retired key versions.

-- Stored forms: "plain:<value>" or "mv1:<base64>" (see src/crypto/envelope.rs).
ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT 'plain:';
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT 'plain:';
-- Keyed, truncated HMAC of the normalised email, to find an account by exact email.
ALTER TABLE users ADD COLUMN email_index TEXT NOT NULL DEFAULT '';
CREATE INDEX users_email_index ON users (email_index);

CREATE TABLE encryption_policies (
    table_name TEXT PRIMARY KEY NOT NULL,
    cipher TEXT NOT NULL,
    hash TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE encrypted_columns (
    table_name TEXT NOT NULL,
    column_name TEXT NOT NULL,
    encrypted BOOLEAN NOT NULL,
    PRIMARY KEY (table_name, column_name)
);

CREATE TABLE reencryption_jobs (
    id BIGINT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done')),
    total BIGINT NOT NULL,
    rewritten BIGINT NOT NULL,
    unreadable BIGINT NOT NULL,
    column_index INTEGER NOT NULL,
    after_row TEXT NOT NULL,
    -- Encrypted columns that may still hold plain values from before this job (comma-separated
    -- table.column): only those are tolerated in plain form while the job runs.
    plain_columns TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT
);

ALTER TABLE root_key_checks ADD COLUMN retired BOOLEAN NOT NULL DEFAULT FALSE;
