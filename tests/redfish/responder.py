#!/usr/bin/env python3
"""A small Redfish service WITH a SessionService, for what sushy-tools' emulator lacks.

sushy-tools (the real emulator the Redfish tests fence through) has no SessionService, so
bbwd's session path (POST .../Sessions, X-Auth-Token, a new log-in on 401, DELETE on exit) and
the service misbehaving (redirects, a missing or odd PowerState, HTTP 500) are proved against
this responder (tests/tests/redfish_fence.rs). Python's standard library only: http.server over
ssl, HTTP/1.1 keep-alive.

usage: responder.py --port P --cert C --key K --log L [--mode MODE] [--expire-after N]
  modes: normal | redirect (the system answers 302 to another host) | nopowerstate |
         oddpowerstate | error500 (the reset answers 500)
  --expire-after N: every session token stops working after N authenticated requests (401)
Each request is appended to the log as one JSON line: method, path, which credentials came.
The power follows a reset 0.5 s later (like a BMC: 204 at once, PowerState later).
"""

import argparse
import http.server
import json
import ssl
import threading
import time

USER, PASSWORD = "fence", "s3cret-redfish"
SYSTEM = "/redfish/v1/Systems/1"
SESSIONS = "/redfish/v1/SessionService/Sessions"

state = {"power": "On", "pending": None, "tokens": {}, "next": 1}
lock = threading.Lock()


def power():
    p = state["pending"]
    if p and time.time() >= p[0]:
        state["power"], state["pending"] = p[1], None
    return state["power"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=None, headers=()):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, auth):
        with open(ARGS.log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "auth": auth}) + "\n")

    def authed(self):
        """'token', 'basic' or None (and 401 sent)."""
        token = self.headers.get("X-Auth-Token")
        with lock:
            if token and token in state["tokens"]:
                state["tokens"][token] += 1
                if ARGS.expire_after and state["tokens"][token] > ARGS.expire_after:
                    del state["tokens"][token]
                else:
                    self.record("token")
                    return "token"
        self.record("refused")
        self.body()  # drained, so that the connection stays in step
        self.reply(401, {"error": {"code": "Base.1.0.NoValidSession", "message": "no valid session"}})
        return None

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return json.loads(self.rfile.read(n) or b"{}")

    def do_GET(self):
        if self.path in ("/redfish/v1", "/redfish/v1/"):
            self.record("none")
            return self.reply(200, {
                "@odata.id": "/redfish/v1/",
                "Systems": {"@odata.id": "/redfish/v1/Systems"},
                "SessionService": {"@odata.id": "/redfish/v1/SessionService"},
                "Links": {"Sessions": {"@odata.id": SESSIONS}},
            })
        if not self.authed():
            return
        if self.path == "/redfish/v1/Systems":
            return self.reply(200, {"Members": [{"@odata.id": SYSTEM}], "Members@odata.count": 1})
        if self.path == SYSTEM:
            if ARGS.mode == "redirect":
                return self.reply(302, None, [("Location", "https://198.51.100.7" + SYSTEM)])
            with lock:
                system = {
                    "@odata.id": SYSTEM,
                    "Id": "1",
                    "Actions": {"#ComputerSystem.Reset": {
                        "target": SYSTEM + "/Actions/ComputerSystem.Reset"}},
                }
                if ARGS.mode == "nopowerstate":
                    pass
                elif ARGS.mode == "oddpowerstate":
                    system["PowerState"] = "Sleeping"
                else:
                    system["PowerState"] = power()
            return self.reply(200, system)
        self.reply(404, {"error": {"code": "Base.1.0.ResourceMissingAtURI", "message": "not found"}})

    def do_POST(self):
        if self.path == SESSIONS:
            creds = self.body()
            if creds.get("UserName") == USER and creds.get("Password") == PASSWORD:
                with lock:
                    n = state["next"]
                    state["next"] += 1
                    token = "token-%d" % n
                    state["tokens"][token] = 0
                self.record("login")
                return self.reply(201, {"@odata.id": "%s/%d" % (SESSIONS, n)},
                                  [("X-Auth-Token", token), ("Location", "%s/%d" % (SESSIONS, n))])
            self.record("login-refused")
            return self.reply(401, {"error": {"code": "Base.1.0.GeneralError",
                                              "message": "Invalid username or password"}})
        if not self.authed():
            return
        if self.path == SYSTEM + "/Actions/ComputerSystem.Reset":
            if ARGS.mode == "error500":
                return self.reply(500, {"error": {"code": "Base.1.0.InternalError", "message": "the BMC is busy",
                                                  "@Message.ExtendedInfo": [{"Message": "The BMC is busy: try later."}]}})
            kind = self.body().get("ResetType")
            target = {"ForceOff": "Off", "On": "On"}.get(kind)
            if target is None:
                return self.reply(400, {"error": {"code": "Base.1.0.PropertyValueNotInList",
                                                  "message": "ResetType %s" % kind}})
            with lock:
                state["pending"] = (time.time() + 0.5, target)
            return self.reply(204)
        self.reply(404, {"error": {"code": "Base.1.0.ResourceMissingAtURI", "message": "not found"}})

    def do_DELETE(self):
        token = self.headers.get("X-Auth-Token")
        if self.path.startswith(SESSIONS + "/") and token in state["tokens"]:
            with lock:
                del state["tokens"][token]
            self.record("logout")
            return self.reply(204)
        self.record("refused")
        self.reply(401, {"error": {"code": "Base.1.0.NoValidSession", "message": "no valid session"}})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--expire-after", type=int, default=0)
    ARGS = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()
