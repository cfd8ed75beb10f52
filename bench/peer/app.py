"""The peer of `cargo xtask bench`: the login endpoint a team writes with wechatpy instead of wxlink.

`POST /v1/wechat/login {"appid","code"}` exchanges the code with WeChat through wechatpy's
`WeChatClient.wxa.code_to_session`, then, in one database transaction, finds the identity
(appid, openid) or the unionid's user, creates the user and identity when new, and stores a new
session whose random bearer token is kept only as its SHA-256 — the same answer shape as wxlink.
`GET /healthz` asks the database. It is a plain WSGI callable (no web framework, which only adds
cost) meant to be served by gunicorn.

Configuration comes from the environment:

- PEER_WECHAT_API_BASE: WeChat's API base (the bench's simulator), e.g. http://127.0.0.1:4000
- PEER_DATABASE_URL: sqlite:///ABSOLUTE/PATH or postgres://user@host:port/db
- PEER_APPS: JSON object {"wx…": "secret", …}

`python app.py --init-db` creates the tables once, before the server starts.

Durability matches wxlink's: SQLite in WAL mode with synchronous=NORMAL and a 5 s busy timeout,
writers taking the lock up front (BEGIN IMMEDIATE); PostgreSQL with its defaults (fsync on).
"""

import hashlib
import json
import os
import secrets
import sqlite3
import sys
import threading
import time
import uuid

from wechatpy import WeChatClient
from wechatpy.client.api import WeChatWxa
from wechatpy.exceptions import WeChatClientException

API_BASE = os.environ.get("PEER_WECHAT_API_BASE", "https://api.weixin.qq.com").rstrip("/") + "/"
DATABASE_URL = os.environ.get("PEER_DATABASE_URL", "sqlite:///tmp/peer.db")
APPS = json.loads(os.environ.get("PEER_APPS", "{}"))
SESSION_TTL_SECS = 7 * 24 * 3600

# wechatpy builds the code2Session URL from this class attribute (it hardcodes
# https://api.weixin.qq.com/); pointing it at the simulator is the whole patch.
WeChatWxa.API_BASE_URL = API_BASE

IS_SQLITE = DATABASE_URL.startswith("sqlite://")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS users (
        id TEXT NOT NULL PRIMARY KEY,
        unionid TEXT UNIQUE,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS identities (
        appid TEXT NOT NULL,
        openid TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users (id),
        created_at BIGINT NOT NULL,
        PRIMARY KEY (appid, openid))""",
    "CREATE INDEX IF NOT EXISTS identities_user_id ON identities (user_id)",
    """CREATE TABLE IF NOT EXISTS sessions (
        token_hash {blob} NOT NULL PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users (id),
        appid TEXT NOT NULL,
        openid TEXT NOT NULL,
        session_key TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id)",
    "CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at)",
]


def _sql(text):
    """Queries are written with `?`; psycopg2 wants `%s`."""
    return text if IS_SQLITE else text.replace("?", "%s")


SQL_IDENTITY = _sql(
    "SELECT i.user_id, u.unionid FROM identities i JOIN users u ON u.id = i.user_id "
    "WHERE i.appid = ? AND i.openid = ?"
)
SQL_BY_UNIONID = _sql("SELECT id FROM users WHERE unionid = ?")
SQL_SET_UNIONID = _sql("UPDATE users SET unionid = ?, updated_at = ? WHERE id = ?")
SQL_NEW_USER = _sql("INSERT INTO users (id, unionid, created_at, updated_at) VALUES (?, ?, ?, ?)")
SQL_NEW_IDENTITY = _sql(
    "INSERT INTO identities (appid, openid, user_id, created_at) VALUES (?, ?, ?, ?)"
)
SQL_NEW_SESSION = _sql(
    "INSERT INTO sessions (token_hash, user_id, appid, openid, session_key, created_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_local = threading.local()


def _connect():
    if IS_SQLITE:
        path = DATABASE_URL[len("sqlite://"):]
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    import psycopg2

    return psycopg2.connect(DATABASE_URL)


def _db():
    conn = getattr(_local, "db", None)
    if conn is None:
        conn = _local.db = _connect()
    return conn


def _wechat(appid):
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    client = clients.get(appid)
    if client is None:
        # code2Session needs no access token, but wechatpy adds one to every request and would
        # fetch it from the hardcoded host: hand it a placeholder, as a cached token would be.
        client = clients[appid] = WeChatClient(
            appid, APPS[appid], access_token="unused-by-code2session", timeout=5
        )
    return client


class _Transaction:
    """One write transaction: BEGIN IMMEDIATE on SQLite, psycopg2's implicit one on PostgreSQL."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        if IS_SQLITE:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn.cursor()

    def __exit__(self, kind, value, tb):
        if IS_SQLITE:
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        elif kind is None:
            self.conn.commit()
        else:
            self.conn.rollback()
        return False


def login(appid, code):
    session = _wechat(appid).wxa.code_to_session(code)
    openid = session["openid"]
    session_key = session["session_key"]
    unionid = session.get("unionid") or None
    token = secrets.token_urlsafe(32)
    token_hash = hashlib.sha256(token.encode()).digest()
    now = int(time.time())
    with _Transaction(_db()) as cur:
        cur.execute(SQL_IDENTITY, (appid, openid))
        row = cur.fetchone()
        if row is not None:
            user_id, known_unionid = row
            if unionid and not known_unionid:
                cur.execute(SQL_SET_UNIONID, (unionid, now, user_id))
                known_unionid = unionid
        else:
            user_id = None
            if unionid:
                cur.execute(SQL_BY_UNIONID, (unionid,))
                found = cur.fetchone()
                user_id = found[0] if found else None
            if user_id is None:
                user_id = uuid.uuid4().hex
                cur.execute(SQL_NEW_USER, (user_id, unionid, now, now))
            cur.execute(SQL_NEW_IDENTITY, (appid, openid, user_id, now))
            known_unionid = unionid
        cur.execute(
            SQL_NEW_SESSION,
            (token_hash, user_id, appid, openid, session_key, now, now + SESSION_TTL_SECS),
        )
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_in": SESSION_TTL_SECS,
        "user_id": user_id,
        "unionid_linked": bool(known_unionid),
        "needs_user_info": not known_unionid,
    }


def _json(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def _error(start_response, status, code, message):
    return _json(start_response, status, {"error": {"code": code, "message": message}})


def app(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    if path == "/healthz" and method == "GET":
        conn = _db()
        if IS_SQLITE:
            conn.execute("SELECT 1").fetchone()
        else:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
            conn.rollback()
        return _json(start_response, "200 OK", {"status": "ok"})
    if path != "/v1/wechat/login":
        return _error(start_response, "404 Not Found", "not_found", "no such route")
    if method != "POST":
        return _error(start_response, "405 Method Not Allowed", "method_not_allowed", "POST only")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length))
        appid, code = request["appid"], request["code"]
    except (ValueError, KeyError, TypeError):
        return _error(start_response, "400 Bad Request", "invalid_request", "appid and code")
    if appid not in APPS:
        return _error(start_response, "400 Bad Request", "unknown_app", "appid not configured")
    try:
        return _json(start_response, "200 OK", login(appid, code))
    except WeChatClientException as e:
        if e.errcode in (40029, 40163):
            return _error(start_response, "401 Unauthorized", "invalid_code", "invalid code")
        return _error(start_response, "502 Bad Gateway", "upstream_error", "WeChat failed")


def init_db():
    conn = _connect()
    blob = "BLOB" if IS_SQLITE else "BYTEA"
    if IS_SQLITE:
        for statement in SCHEMA:
            conn.execute(statement.format(blob=blob))
    else:
        with conn, conn.cursor() as cur:
            for statement in SCHEMA:
                cur.execute(statement.format(blob=blob))
    conn.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--init-db"]:
        init_db()
    else:
        sys.exit("usage: python app.py --init-db (serve it with gunicorn app:app)")
