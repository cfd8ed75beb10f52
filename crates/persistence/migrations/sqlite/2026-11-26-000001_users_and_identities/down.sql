DROP INDEX identities_user_id;
DROP TABLE identities;
DROP TABLE users;
