"""Introspects wxlink tokens with authlib, an OAuth client nobody here wrote, as a Python
resource server would: `OAuth2Session.introspect_token` sends RFC 7662's form body and
authenticates with HTTP Basic (client_secret_basic), name and token form-urlencoded.

Run by tests/tests/api/introspection.rs in the venv of bench/peer/requirements.txt; prints one
JSON object with each answer's status, body and what authlib sent, for the Rust test to assert on.

Environment:
- WXLINK_INTROSPECT: the introspection endpoint, http://127.0.0.1:PORT/internal/v1/introspect
- CLIENT_ID, CLIENT_SECRET: an [internal.clients.<name>] client with tokens:introspect
- ACTIVE_TOKEN: a user's token that works; INACTIVE_TOKEN: one that does not
"""

import json
import os

from authlib.integrations.requests_client import OAuth2Session

# wxlink's internal API is served on loopback in the test; authlib refuses plain HTTP
# otherwise.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

URL = os.environ["WXLINK_INTROSPECT"]


def introspect(session, token):
    response = session.introspect_token(URL, token=token, token_type_hint="access_token")
    sent = response.request
    return {
        "status": response.status_code,
        "body": response.json(),
        "sent_content_type": sent.headers.get("Content-Type", ""),
        "sent_auth_scheme": sent.headers.get("Authorization", "").split(" ")[0],
    }


session = OAuth2Session(
    client_id=os.environ["CLIENT_ID"],
    client_secret=os.environ["CLIENT_SECRET"],
    token_endpoint_auth_method="client_secret_basic",
)
# A session with a wrong secret, to see the refusal as authlib's user would.
wrong = OAuth2Session(
    client_id=os.environ["CLIENT_ID"],
    client_secret="not-the-secret-0123456789",
    token_endpoint_auth_method="client_secret_basic",
)
print(
    json.dumps(
        {
            "active": introspect(session, os.environ["ACTIVE_TOKEN"]),
            "inactive": introspect(session, os.environ["INACTIVE_TOKEN"]),
            "wrong_secret": introspect(wrong, os.environ["ACTIVE_TOKEN"]),
        }
    )
)
