DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
