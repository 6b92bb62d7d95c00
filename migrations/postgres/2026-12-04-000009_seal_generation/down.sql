ALTER TABLE state_seal DROP COLUMN generation;
