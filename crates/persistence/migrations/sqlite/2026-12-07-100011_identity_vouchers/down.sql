ALTER TABLE users DROP COLUMN phone_openid;
ALTER TABLE users DROP COLUMN phone_appid;
ALTER TABLE identities DROP COLUMN unionid;
