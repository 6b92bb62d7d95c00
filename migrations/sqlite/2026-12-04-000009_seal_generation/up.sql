-- How many times the admin's state has been sealed: each reseal adds one, under the row's
-- lock. A server following another's changes compares it to skip a snapshot older than a
-- change it has itself just put in force.
ALTER TABLE state_seal ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
