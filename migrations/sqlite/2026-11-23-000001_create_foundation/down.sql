DROP TRIGGER audit_events_no_delete;
DROP TRIGGER audit_events_no_update;
DROP TABLE audit_events;
DROP TABLE root_key_checks;
DROP TABLE settings;
DROP TABLE page_access;
DROP TABLE sessions;
DROP TABLE users;
