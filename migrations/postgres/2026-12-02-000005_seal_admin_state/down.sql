DROP TABLE state_seal;
