DROP TABLE sign_in_failures;
DROP TABLE operator_sessions;
DROP TABLE operators;
DROP INDEX users_phone_hash;
ALTER TABLE users DROP COLUMN phone_hash;
