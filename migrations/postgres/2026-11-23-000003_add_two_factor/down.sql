ALTER TABLE sessions DROP COLUMN stage;
ALTER TABLE users DROP COLUMN two_factor_enabled;
DROP TABLE recovery_codes;
DROP TABLE two_factor;
