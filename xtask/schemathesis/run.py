"""`cargo xtask schemathesis`: schemathesis against `wxlink serve --sandbox`.

For each token format (`[tokens] format = "opaque"`, then `"jwt"`, whose routes are then mounted
and documented too), starts the sandbox on a free loopback port (with a client of the internal API
that has every scope, so the internal routes are mounted and documented), logs a user in through
the sandbox's simulator, and runs `st run /openapi.json --checks all` four times: anonymous, with
the user's bearer token (every route but logout), with the client's token (the internal routes),
and logout last (it revokes the token). Each run is bounded in examples and time. Exits non-zero
on the first failing run.
"""

import argparse
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request


def post_json(url, body):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


EVERY_SCOPE = ["users:read", "users:phone", "events:read", "tokens:introspect", "support:write"]


def start_sandbox(wxlink, workdir, service_token, token_format):
    env = dict(os.environ)
    env.update(
        {
            "WXLINK__SERVER__BIND": "127.0.0.1:0",
            "WXLINK__INTERNAL__CLIENTS__SCHEMATHESIS__TOKEN": service_token,
            "WXLINK__INTERNAL__CLIENTS__SCHEMATHESIS__SCOPES": " ".join(EVERY_SCOPE),
            "WXLINK__TOKENS__FORMAT": token_format,
            "WXLINK__TOKENS__ISSUER": "https://id.example.com",
            "WXLINK_LOG": "warn",
        }
    )
    log = open(workdir / "wxlink.log", "w")
    proc = subprocess.Popen(
        [wxlink, "serve", "--sandbox"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    base = sim = None
    deadline = time.monotonic() + 60
    while (base is None or sim is None) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("wxlink sandbox listening on "):
            base = line.split()[-1]
        elif line.startswith("WeChat simulator on "):
            sim = line.split()[3]
    if base is None or sim is None:
        proc.kill()
        sys.exit(f"the sandbox did not start; see {workdir / 'wxlink.log'}")
    return proc, base, sim


def user_token(base, sim):
    login = post_json(
        f"{sim}/__sim/login",
        {"appid": "wxd0000000000000b2", "openid": "st-in-b", "unionid": "st-union"},
    )
    answer = post_json(
        f"{base}/v1/wechat/login", {"appid": "wxd0000000000000b2", "code": login["code"]}
    )
    return answer["token"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wxlink", required=True)
    parser.add_argument("--st", required=True)
    parser.add_argument("--max-examples", type=int, default=30)
    parser.add_argument("--seconds", type=int, default=120, help="limit of each run")
    args = parser.parse_args()

    for token_format in ["opaque", "jwt"]:
        print(f"schemathesis: [tokens] format = {token_format}", flush=True)
        against_sandbox(args, token_format)


def against_sandbox(args, token_format):
    service_token = "st-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="wxlink-st-") as tmp:
        workdir = pathlib.Path(tmp)
        proc, base, sim = start_sandbox(args.wxlink, workdir, service_token, token_format)
        try:
            token = user_token(base, sim)
            config = pathlib.Path(__file__).with_name("schemathesis.toml")
            common = [
                args.st,
                "--config-file",
                str(config),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(args.max_examples),
                "--workers",
                "1",
                "--no-color",
            ]
            runs = [
                ("anonymous", []),
                (
                    "user token",
                    [
                        "-H",
                        f"Authorization: Bearer {token}",
                        "--exclude-path-regex",
                        "^/(internal/|v1/logout$)",
                    ],
                ),
                (
                    "service token",
                    [
                        "-H",
                        f"Authorization: Bearer {service_token}",
                        "--include-path-regex",
                        "^/internal/",
                    ],
                ),
                (
                    "logout",
                    ["-H", f"Authorization: Bearer {token}", "--include-path", "/v1/logout"],
                ),
            ]
            for name, extra in runs:
                print(f"schemathesis: {name}", flush=True)
                try:
                    # In the temp dir: schemathesis keeps a cache in its working directory.
                    done = subprocess.run(common + extra, cwd=workdir, timeout=args.seconds)
                except subprocess.TimeoutExpired:
                    sys.exit(f"schemathesis ({name}) took longer than {args.seconds} s")
                if done.returncode != 0:
                    sys.exit(f"schemathesis ({name}) found failures (exit {done.returncode})")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
