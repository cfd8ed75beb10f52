-- `wxlink_login` in fewer statements, the rules unchanged (each statement inside the function
-- pays PostgreSQL's executor start-up and shutdown, the larger part of a login's server CPU):
-- - a returning identity's lookup and the hold of its user are one statement, and the hold of
--   the identity and its vouching for the unionid are one: three statements, not four or five;
-- - a new identity whose unionid has an owner holds the owner and learns whether it is live in
--   one statement, not two;
-- - a new user's two events are one INSERT (their ids in the same order as before).
-- The signature is the same; a node of any earlier version calls it as before.
CREATE OR REPLACE FUNCTION wxlink_login(
    p_appid TEXT,
    p_openid TEXT,
    p_unionid TEXT,
    p_new_user TEXT,
    p_at BIGINT,
    p_token_hash BYTEA,
    p_session_key BYTEA,
    p_expires_at BIGINT,
    p_refresh_hash BYTEA,
    OUT o_user TEXT,
    OUT o_outcome TEXT,
    OUT o_linked BOOLEAN
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_owner TEXT;
    v_unionid TEXT;
    v_merged TEXT;
    v_live BOOLEAN;
    v_link BOOLEAN := FALSE;
    v_created BOOLEAN := FALSE;
    v_hops INT := 0;
    v_random TEXT;
BEGIN
    -- The identity's user, held if it is live: the lookup and the hold in one statement. The
    -- hold's update is the read: it returns the user as it is once held.
    UPDATE users u SET updated_at = u.updated_at
    FROM identities i
    WHERE i.appid = p_appid AND i.openid = p_openid AND u.id = i.user_id
      AND u.deleted_at IS NULL AND u.merged_into IS NULL
    RETURNING u.id, u.unionid INTO o_user, v_unionid;

    IF NOT FOUND THEN
        SELECT i.user_id INTO v_owner
        FROM identities i
        WHERE i.appid = p_appid AND i.openid = p_openid;
        IF FOUND THEN
            -- The identity acts as whom its user was merged into (or its user changed since
            -- the statement above): hold that user, the order of merges and splits.
            o_user := v_owner;
            LOOP
                UPDATE users u SET updated_at = u.updated_at
                WHERE u.id = o_user AND u.deleted_at IS NULL AND u.merged_into IS NULL
                RETURNING u.unionid INTO v_unionid;
                EXIT WHEN FOUND;
                SELECT u.merged_into INTO v_merged
                FROM users u
                WHERE u.id = o_user AND u.deleted_at IS NULL;
                IF NOT FOUND OR v_merged IS NULL THEN
                    -- Cancelled (or restored) since the identity was read: run it again. A
                    -- user that does not exist is damage, which the rules report.
                    IF EXISTS (SELECT 1 FROM users u WHERE u.id = o_user) THEN
                        RAISE EXCEPTION 'user % changed during a login', o_user
                            USING ERRCODE = 'serialization_failure';
                    END IF;
                    o_user := NULL;
                    RETURN;
                END IF;
                -- Merge chains are one hop long; the rules report a longer one.
                v_hops := v_hops + 1;
                IF v_hops >= 8 THEN
                    o_user := NULL;
                    RETURN;
                END IF;
                o_user := v_merged;
            END LOOP;
        END IF;
    END IF;

    IF o_user IS NOT NULL THEN
        IF p_unionid IS NOT NULL AND v_unionid IS DISTINCT FROM p_unionid THEN
            IF v_unionid IS NOT NULL THEN
                -- Another unionid: the rules answer the conflict.
                o_user := NULL;
                RETURN;
            END IF;
            IF EXISTS (SELECT 1 FROM users u WHERE u.unionid = p_unionid) THEN
                -- A merge into the unionid's owner: the rules' transaction does it.
                o_user := NULL;
                RETURN;
            END IF;
            -- The provisional user learns the unionid nobody holds.
            v_link := TRUE;
        END IF;

        -- Hold the identity (after its user), and let it vouch for the unionid it came with:
        -- one statement, which writes a change only when the unionid is new to it.
        UPDATE identities i
        SET unionid = COALESCE(p_unionid, i.unionid),
            updated_at = CASE WHEN p_unionid IS NOT NULL AND i.unionid IS DISTINCT FROM p_unionid
                              THEN p_at ELSE i.updated_at END
        WHERE i.appid = p_appid AND i.openid = p_openid AND i.user_id = o_user;
        IF NOT FOUND THEN
            -- A split moved the identity since it was read.
            RAISE EXCEPTION 'identity moved during a login'
                USING ERRCODE = 'serialization_failure';
        END IF;

        IF v_link THEN
            UPDATE users u SET unionid = p_unionid, updated_at = p_at
            WHERE u.id = o_user AND u.unionid IS NULL AND u.merged_into IS NULL;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'user % changed during a login', o_user
                    USING ERRCODE = 'serialization_failure';
            END IF;
            INSERT INTO events (kind, user_id, other_user_id, appid, openid, at)
            VALUES ('unionid_linked', o_user, NULL, p_appid, p_openid, p_at);
            v_unionid := p_unionid;
            o_outcome := 'linked';
        ELSE
            o_outcome := 'returning';
        END IF;
    ELSE
        IF p_unionid IS NOT NULL THEN
            -- The unionid's owner, held, and whether it is live, in one statement.
            UPDATE users u SET updated_at = u.updated_at
            WHERE u.unionid = p_unionid
            RETURNING u.id, u.unionid, u.deleted_at IS NULL AND u.merged_into IS NULL
            INTO o_user, v_unionid, v_live;
            IF FOUND AND NOT v_live THEN
                RAISE EXCEPTION 'the owner of a unionid changed during a login'
                    USING ERRCODE = 'serialization_failure';
            END IF;
        END IF;
        IF o_user IS NOT NULL THEN
            o_outcome := 'linked';
        ELSE
            o_user := p_new_user;
            IF o_user IS NULL THEN
                -- A UUIDv7 as 32 hex digits, as the nodes mint them: 48 bits of Unix
                -- milliseconds, the version, then the 74 random bits of a v4 (its version
                -- digit left out, its variant kept).
                v_random := replace(gen_random_uuid()::TEXT, '-', '');
                o_user := lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT),
                               12, '0')
                          || '7' || substr(v_random, 14, 3) || substr(v_random, 17, 16);
            END IF;
            v_unionid := p_unionid;
            INSERT INTO users (id, unionid, merged_into, created_at, updated_at)
            VALUES (o_user, p_unionid, NULL, p_at, p_at);
            v_created := TRUE;
            o_outcome := CASE WHEN p_unionid IS NULL THEN 'provisional' ELSE 'new' END;
        END IF;
        -- The new identity vouches for the unionid told with it. Its row is this
        -- transaction's own until it commits: held without a further statement.
        INSERT INTO identities (appid, openid, user_id, created_at, updated_at, unionid)
        VALUES (p_appid, p_openid, o_user, p_at, p_at, p_unionid);
        IF v_created THEN
            INSERT INTO events (kind, user_id, other_user_id, appid, openid, at)
            VALUES ('user_created', o_user, NULL, p_appid, p_openid, p_at),
                   ('identity_linked', o_user, NULL, p_appid, p_openid, p_at);
        ELSE
            INSERT INTO events (kind, user_id, other_user_id, appid, openid, at)
            VALUES ('identity_linked', o_user, NULL, p_appid, p_openid, p_at);
        END IF;
    END IF;

    INSERT INTO sessions (token_hash, user_id, appid, openid, session_key, created_at,
                          expires_at, revoked_at)
    VALUES (p_token_hash, o_user, p_appid, p_openid, p_session_key, p_at, p_expires_at, NULL);
    IF p_refresh_hash IS NOT NULL THEN
        INSERT INTO refresh_tokens (token_hash, session_hash, created_at)
        VALUES (p_refresh_hash, p_token_hash, p_at);
    END IF;
    o_linked := v_unionid IS NOT NULL;
END;
$$;
