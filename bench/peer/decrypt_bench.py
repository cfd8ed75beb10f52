"""Times what a team's Python backend does per `wx.getUserInfo` submission, with wechatpy.

Reads one JSON object on stdin: session_key, iv, encrypted_data, raw_data, signature, appid,
iterations, rounds. Each operation builds wechatpy's decryptor for the user's session_key and iv
(`wechatpy.crypto.WeChatWxaCrypto`, wechatpy's counterpart of WeChat's sample `WXBizDataCrypt`),
decrypts (base64, AES-128-CBC, PKCS#7, JSON, watermark appid check), checks the watermark's age
and the rawData signature `sha1(rawData + session_key)` in constant time — the same checks wxlink
makes. Prints one JSON object: {"ns_per_op": [one figure per round], "openid": …}.
"""

import hashlib
import hmac
import json
import sys
import time

from wechatpy.crypto import WeChatWxaCrypto


def open_user_data(session_key, iv, encrypted_data, raw_data, signature, appid, now):
    data = WeChatWxaCrypto(session_key, iv, appid).decrypt_message(encrypted_data)
    expected = hashlib.sha1((raw_data + session_key).encode("utf-8")).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ValueError("signature mismatch")
    if now - int(data["watermark"]["timestamp"]) > 600:
        raise ValueError("watermark expired")
    return data


def main():
    spec = json.load(sys.stdin)
    args = (
        spec["session_key"],
        spec["iv"],
        spec["encrypted_data"],
        spec["raw_data"],
        spec["signature"],
        spec["appid"],
    )
    iterations = int(spec["iterations"])
    rounds = int(spec["rounds"])
    now = int(time.time())
    first = open_user_data(*args, now)
    figures = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(iterations):
            open_user_data(*args, now)
        figures.append((time.perf_counter_ns() - start) / iterations)
    json.dump({"ns_per_op": figures, "openid": first["openId"]}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
