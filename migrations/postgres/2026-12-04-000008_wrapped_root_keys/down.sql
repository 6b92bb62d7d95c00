DROP TABLE wrapped_root_keys;
