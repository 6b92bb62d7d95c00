DROP TABLE reencryption_jobs;
DROP TABLE encrypted_columns;
DROP TABLE encryption_policies;
DROP INDEX users_email_index;
ALTER TABLE users DROP COLUMN email_index;
ALTER TABLE users DROP COLUMN email;
ALTER TABLE users DROP COLUMN full_name;
ALTER TABLE root_key_checks DROP COLUMN retired;
