DROP INDEX users_phone_hash;
CREATE INDEX users_phone_hash ON users (phone_hash);
