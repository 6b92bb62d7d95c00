-- The admin's state that decides how stored values are judged and who sees what (settings,
-- page access, encryption policy, re-encryption jobs, retired root-key versions, masking),
-- sealed as one snapshot with an HMAC under a key derived from the root key. Whoever edits
-- those tables in the file, deletes a row or adds one, cannot make the snapshot match.
CREATE TABLE state_seal (
    id BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    snapshot TEXT NOT NULL,
    mac TEXT NOT NULL,
    sealed_at BIGINT NOT NULL
);
