"""Drives wxlink-wechat-sim with wechatpy, an SDK nobody here wrote, as another team would.

Run by tests/tests/sdk.rs in the venv of bench/peer/requirements.txt; prints one JSON object
with what wechatpy returned or raised at each step, for the Rust test to assert on.

Environment:
- SIM_BASE: the simulator's base URL, e.g. http://127.0.0.1:4000
- SIM_APPID, SIM_SECRET: a mini program registered with the simulator
- SIM_CODE: a fresh wx.login code of that mini program
"""

import hashlib
import hmac
import json
import os
import sys

import requests
from requests.adapters import HTTPAdapter
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

WECHAT = "https://api.weixin.qq.com/"
SIM = os.environ["SIM_BASE"].rstrip("/") + "/"


class ToSimulator(HTTPAdapter):
    """Sends every request for api.weixin.qq.com to the simulator instead.

    wechatpy hardcodes the host in several places (cgi-bin/token among them); rewriting at the
    transport is the one patch that covers them all and leaves wechatpy's own code untouched.
    """

    def send(self, request, **kwargs):
        request.url = SIM + request.url[len(WECHAT):]
        return super().send(request, **kwargs)


def failure(call):
    """Runs call; returns wechatpy's exception as {errcode, errmsg}, or the result."""
    try:
        return {"result": call()}
    except WeChatClientException as e:
        return {"errcode": e.errcode, "errmsg": e.errmsg}


def main():
    client = WeChatClient(os.environ["SIM_APPID"], os.environ["SIM_SECRET"], timeout=5)
    client._http.mount(WECHAT, ToSimulator())
    code = os.environ["SIM_CODE"]
    out = {}

    # wechatpy adds an access_token to every call, code2Session too: this fetches one first.
    session = client.wxa.code_to_session(code)
    out["code2session"] = session
    out["token_for_code2session"] = client.access_token
    out["code_reused"] = failure(lambda: client.wxa.code_to_session(code))
    out["fetch_access_token"] = client.fetch_access_token()

    # wechatpy has no checkSessionKey; its generic get() adds the token and handles errcodes.
    def check_session(session_key):
        signature = hmac.new(session_key.encode(), b"", hashlib.sha256).hexdigest()
        return client.get(
            WECHAT + "wxa/checksession",
            params={"openid": session["openid"], "signature": signature, "sig_method": "hmac_sha256"},
        )

    out["checksession"] = failure(lambda: check_session(session["session_key"]))
    out["checksession_wrong_key"] = failure(lambda: check_session("AAAAAAAAAAAAAAAAAAAAAA=="))

    # A rival's refresh kills the token: wechatpy sees 40001, fetches a new one and retries.
    revoked = requests.post(
        SIM + "__sim/access-token/revoke", json={"appid": os.environ["SIM_APPID"]}, timeout=5
    )
    revoked.raise_for_status()
    token_before = client.access_token
    out["checksession_after_revoke"] = failure(lambda: check_session(session["session_key"]))
    out["token_renewed"] = client.access_token != token_before

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
