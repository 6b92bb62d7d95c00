-- The root key versions as a key manager (OpenBao / Vault transit, a PKCS#11 HSM) wrapped
-- them, when one holds the root key: the server's disk then holds no key at all, every server
-- sharing the database finds the same keys, and a backup carries the keys its values need,
-- which only the key manager can open. `wrapping_key` names the key manager's key (the
-- transit key, the HSM key's label) that wrapped it, so that a new one can rewrap it.
CREATE TABLE wrapped_root_keys (
    version BIGINT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    wrapping_key TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    wrapped_at BIGINT NOT NULL
);
