-- Accounts, sessions, page access, settings, root-key check values and the audit trail.
-- Timestamps are whole seconds since the Unix epoch (BIGINT), which SQLite and PostgreSQL share.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    level TEXT NOT NULL CHECK (level IN ('admin', 'doctor', 'patient')),
    password_hash TEXT NOT NULL,
    must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_digest TEXT NOT NULL UNIQUE,
    key_epoch BIGINT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE page_access (
    level TEXT NOT NULL,
    page TEXT NOT NULL,
    allowed BOOLEAN NOT NULL,
    PRIMARY KEY (level, page)
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE root_key_checks (
    version BIGINT PRIMARY KEY NOT NULL,
    check_value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id BIGINT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    ip TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_mac TEXT NOT NULL,
    mac TEXT NOT NULL
);
CREATE INDEX audit_events_action ON audit_events (action);
CREATE INDEX audit_events_at ON audit_events (at);

-- The trail is append-only for the server; the HMAC chain catches whoever edits the rows anyway.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
