-- An identity vouches for the unionid WeChat told for it; a user holds a unionid only while at
-- least one of its identities vouches for it. Existing identities of a user that holds a
-- unionid count as vouching for it.
ALTER TABLE identities ADD COLUMN unionid TEXT;
UPDATE identities
SET unionid = (SELECT users.unionid FROM users WHERE users.id = identities.user_id);
-- The identity that verified the user's phone number, which a split moves the number with;
-- NULL for numbers verified before wxlink recorded it (they stay where they are).
ALTER TABLE users ADD COLUMN phone_appid TEXT;
ALTER TABLE users ADD COLUMN phone_openid TEXT;
