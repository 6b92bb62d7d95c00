-- Wrong passwords and codes per account, and its lock, kept in the database so that every
-- server on it counts them together: five wrong passwords spread over three servers lock the
-- account. `account` is the username as the sign-in form normalises it (it may name nobody);
-- `failures` the Unix times of the failures still in the window, comma-separated. Rows go when
-- the owner signs in, an admin unlocks, or they have nothing left to say (`updated_at`).
CREATE TABLE account_lockouts (
    account TEXT PRIMARY KEY NOT NULL,
    failures TEXT NOT NULL,
    locked_until BIGINT NOT NULL,
    locks BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX account_lockouts_updated_at ON account_lockouts (updated_at);
