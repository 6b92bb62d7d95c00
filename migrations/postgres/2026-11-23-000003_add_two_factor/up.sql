-- Two-factor sign-in: a TOTP secret per account (sealed through the field encryption), the
-- last step used (no code works twice), recovery codes (keyed digests), and the half-signed-in
-- stage of a session between the password and the code.

CREATE TABLE two_factor (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    last_used_step BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_digest TEXT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_user_id ON recovery_codes (user_id);

ALTER TABLE users ADD COLUMN two_factor_enabled BOOLEAN NOT NULL DEFAULT FALSE;
-- 'full', or 'second_factor' between a correct password and a correct code.
ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'full';
