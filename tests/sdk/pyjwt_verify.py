"""Verify wxlink access tokens as another team's Python service would: PyJWT's PyJWKClient
against /.well-known/jwks.json, nothing of wxlink's own.

Input: env JWKS_URL, ISSUER, and TOKENS (a JSON list). Output: one JSON list on stdout, per
token either {"kid", "claims"} or {"error"}.
"""

import json
import os

import jwt

client = jwt.PyJWKClient(os.environ["JWKS_URL"])
results = []
for token in json.loads(os.environ["TOKENS"]):
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            issuer=os.environ["ISSUER"],
            options={"require": ["exp", "iat", "iss", "sub"]},
        )
        results.append({"kid": key.key_id, "claims": claims})
    except jwt.exceptions.PyJWTError as error:
        results.append({"error": f"{type(error).__name__}: {error}"})
print(json.dumps(results))
