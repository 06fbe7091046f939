#!/usr/bin/env python3
"""Writes the committed seed corpus: fuzz/corpus/<target>/seed-*.

form_bodies and token_verify seeds are plain bodies and tokens. pipeline seeds are sessions in
the byte encoding `arbitrary` reads for `Session` in fuzz_targets/pipeline.rs (enum variant i of n:
a little-endian u32 v with v*n >> 32 == i; bool and Option/Result tags: one byte; integers:
little-endian; `Text`: one length byte then the bytes; `Blob`: a u16 length; Vec: a 1 byte before
each element, a 0 after the last). The variant lists below mirror the Rust enums, in order: change
them together. `cargo +nightly fuzz fmt pipeline fuzz/corpus/pipeline/seed-...` shows what a seed
decodes to.

Run from anywhere: python3 fuzz/make_seeds.py
"""

import base64
import hashlib
import hmac
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


# ---------------------------------------------------------------- form_bodies
BODIES = {
    "register-minimal": {"provider": "gcm", "token": "fcm:abc-_1"},
    "register-full": {
        "provider": "apns", "token": "ABCDEF0123", "voip_provider": "apns_voip", "voip_token": "00ff",
        "bypass_server_throttling_supported": True, "bundle_id": "com.hammerandchisel.discord",
        "unknown": 1,
    },
    "register-bad": {
        "provider": "fax", "token": "", "voip_provider": "gcm", "bypass_server_throttling_supported": "yes",
        "bundle_id": "",
    },
    "register-nulls": {"provider": "apns_internal", "token": "00", "voip_provider": None, "voip_token": None,
                       "bundle_id": None, "bypass_server_throttling_supported": None},
    "sync": {"provider": "gcm", "token": "phone", "push_sync_tokens": ["a", 2, None]},
    "sync-ok": {"provider": "apns_internal_voip", "token": "abcd", "push_sync_tokens": ["x.y.z"]},
    "invalidate": {"provider": "apns_voip", "token": "00ff", "reason": "bad_device_token"},
    "invalidate-bad": {"provider": "gcm", "token": "x", "reason": "INVALID_ARGUMENT"},
}
for name, body in BODIES.items():
    write("form_bodies", name, json.dumps(body))
write("form_bodies", "not-object", "[1]")
write("form_bodies", "blank", " \n\t")
write("form_bodies", "truncated", '{"provider": ')
write("form_bodies", "escapes", r'{"provider": "gcm", "token": "caf\u00e9", "bundle_id": "com.\u0007"}')
write("form_bodies", "deep", "[" * 200 + "]" * 200)


# ---------------------------------------------------------------- token_verify
# Must match fuzz_targets/token_verify.rs.
KEY_A = b"fuzz-key-A-0123456789abcdef0123456789abcdef0123456789abcdef0123"
KEY_B = b"fuzz-key-B-0123456789abcdef0123456789abcdef0123456789abcdef0123"
NOW = 1_760_000_000


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(key, purpose, user, now):
    p1 = b64(str(user).encode())
    p2 = b64(struct.pack(">I", min(now, 2**32 - 1)))
    tag = hmac.new(key, f"{purpose}.{p1}.{p2}".encode(), hashlib.sha256).digest()[:20]
    return f"{p1}.{p2}.{b64(tag)}"


write("token_verify", "sync-keyB", mint(KEY_B, "sync", 852892297661906993, NOW))
write("token_verify", "auth-keyA", mint(KEY_A, "auth", 42, NOW))
write("token_verify", "max-user", mint(KEY_B, "sync", 2**64 - 1, 2**32 - 1))
write("token_verify", "discord-example", "ODUyODkyMjk3NjYxOTA2OTkz.ZfoufA.rHvCtpfHjr9kdRab1ZTl83PRhhZ")
write("token_verify", "padded", mint(KEY_B, "sync", 7, NOW).replace(".", "=.", 1))
write("token_verify", "four-parts", "MQ.aPMXgA.x.y")
write("token_verify", "keylist", "k" * 32 + ", " + "0123456789abcdef" * 2 + ",short")


# ---------------------------------------------------------------- pipeline
def variant(names, name):
    i, n = names.index(name), len(names)
    v = -(-(i << 32) // n)
    assert (v * n) >> 32 == i
    return struct.pack("<I", v)


def flag(b):
    return b"\x01" if b else b"\x00"


def u8(x):
    return struct.pack("<B", x)


def text(s):
    raw = s.encode() if isinstance(s, str) else s
    assert len(raw) < 256
    return u8(len(raw)) + raw


def blob(raw):
    return struct.pack("<H", len(raw)) + raw


def option(x):
    return b"\x00" if x is None else b"\x01" + x


def vec(items):
    return b"".join(b"\x01" + it for it in items) + b"\x00"


ADVANCE = ["None", "Second", "Minute", "Day", "Week", "Year", "Millis"]
METHOD = ["Get", "Post", "Put", "Delete", "Patch", "Head", "Lower", "Empty", "Junk"]
USER = ["Small", "Zero", "Max", "Any"]
PATH = ["Devices", "DevicesEncoded", "DevicesQuery", "DevicesFragment", "SyncToken", "SyncTokenEncoded",
        "Sync", "SyncEncoded", "DevicesSlash", "UpperMe", "DoubleSlash", "NoLeadingSlash", "BadEscape",
        "NonUtf8Escape", "OtherUser", "InternalDevices", "InternalDevicesRaw", "InternalInvalidate",
        "InternalEncoded", "InternalRoot", "Root", "Empty", "Raw"]
STYLE = ["Bare", "Bearer", "LowerDoubleSpace", "Padded"]
GATEWAY_USER = ["Pick", "Raw", "Missing"]
AUTH = ["None", "Valid", "Expired", "FromTheFuture", "WrongPurpose", "WrongKey", "Junk", "NonUtf8", "Gateway"]
ADMIN = ["None", "Valid", "Padded", "Wrong"]
PROVIDER = ["Known", "Junk", "Missing", "Null", "Number"]
TOKEN = ["Pool", "Any", "Longest", "TooLong", "Missing", "Null", "Number"]
SYNC_TOK = ["Valid", "Expired", "AuthPurpose", "Junk", "NotAString"]
BODY = ["Empty", "Raw", "Register", "Device", "Sync", "Invalidate", "TooLarge"]

PROVIDERS = ["gcm", "apns", "apns_internal", "apns_voip", "apns_internal_voip"]
POOL = ["00ff", "abcdef0123456789", "fcm:token-1", "fcm:token-2", "ABCD", "zz"]
REASONS = ["unregistered", "bad_device_token", "device_token_not_for_topic", "sender_id_mismatch", "manual"]


def user(n):
    """Users 1 to 4 (Small), 0, or any id."""
    if n == 0:
        return variant(USER, "Zero")
    if 1 <= n <= 4:
        return variant(USER, "Small") + u8(n - 1)
    return variant(USER, "Any") + struct.pack("<Q", n)


def device(provider, token):
    p = variant(PROVIDER, "Known") + u8(PROVIDERS.index(provider))
    t = variant(TOKEN, "Pool") + u8(POOL.index(token)) if token in POOL else variant(TOKEN, "Any") + text(token)
    return p + t


def step(method, path, auth=None, admin="None", body=None, advance="None"):
    out = variant(ADVANCE, advance)
    out += variant(METHOD, method) if isinstance(method, str) else variant(METHOD, "Junk") + text(method[0])
    out += path if isinstance(path, bytes) else variant(PATH, path)
    out += auth if auth is not None else variant(AUTH, "None")
    out += variant(ADMIN, admin)
    out += body if body is not None else variant(BODY, "Empty")
    return out


def valid(n, style="Bearer"):
    return variant(AUTH, "Valid") + user(n) + variant(STYLE, style)


def register(provider, token, voip=None, bypass=None, bundle_id=None):
    return (variant(BODY, "Register") + device(provider, token)
            + option(device(*voip) if voip else None)
            + option(None if bypass is None else option(flag(bypass) if bypass != "null" else None))
            + option(None if bundle_id is None else text(bundle_id))
            + option(None))


def sync(provider, token, tokens):
    return variant(BODY, "Sync") + device(provider, token) + vec(tokens)


def session(steps, gateway=False, small_cap=False, tight_rate=False):
    return flag(gateway) + flag(small_cap) + flag(tight_rate) + vec(steps)


write("pipeline", "register-then-list", session([
    step("Post", "Devices", valid(1), body=register("apns", "abcdef0123456789", voip=("apns_voip", "00ff"),
                                                    bypass=True, bundle_id="com.example")),
    step("Get", variant(PATH, "InternalDevices") + user(1), admin="Valid", advance="Second"),
]))
write("pipeline", "sync-named-accounts", session([
    step("Post", "Devices", valid(1), body=register("gcm", "fcm:token-1")),
    step("Put", "SyncEncoded", valid(1), body=sync("gcm", "fcm:token-1", [
        variant(SYNC_TOK, "Valid") + user(2),
        variant(SYNC_TOK, "Expired") + user(3),
        variant(SYNC_TOK, "AuthPurpose") + user(4),
        variant(SYNC_TOK, "Junk") + text("junk"),
    ])),
    step("Put", "Sync", valid(1, "Bare"), body=sync("gcm", "fcm:token-1", []), advance="Minute"),
    step("Get", "SyncToken", valid(2, "LowerDoubleSpace")),
]))
write("pipeline", "invalidate-then-unregister", session([
    step("Post", "DevicesEncoded", valid(2), body=register("apns", "00ff", voip=("apns_internal_voip", "ABCD"))),
    step("Post", "InternalInvalidate", admin="Valid",
         body=variant(BODY, "Invalidate") + device("apns_internal_voip", "ABCD") + flag(True) + u8(0)),
    step("Delete", "DevicesQuery", valid(2, "Padded"), body=variant(BODY, "Device") + device("apns", "00ff")),
]))
write("pipeline", "gateway-sync-token", session([
    step("Get", "SyncToken", variant(AUTH, "Gateway") + flag(True) + variant(GATEWAY_USER, "Pick") + user(3)),
    step("Post", "Devices", variant(AUTH, "Gateway") + flag(True) + variant(GATEWAY_USER, "Raw") + text(" 4 "),
         body=register("gcm", "fcm:token-2", bypass="null")),
], gateway=True))
write("pipeline", "cap-and-rate-limit", session([
    step("Post", "Devices", valid(1), body=register("gcm", "fcm:token-1")),
    step("Post", "Devices", valid(1), body=register("gcm", "fcm:token-2"), advance="Second"),
    step("Post", "Devices", valid(1), body=register("apns", "00ff"), advance="Second"),
    step("Post", "Devices", valid(1), body=register("apns", "ABCD"), advance="Second"),
], small_cap=True, tight_rate=True))
write("pipeline", "refusals", session([
    step("Post", "Devices", valid(1), body=variant(BODY, "Raw") + blob(b'{"provider": ')),
    step("Post", "Devices", valid(1), body=variant(BODY, "TooLarge")),
    step(("BREW",), "Devices", valid(1)),
    step("Post", "Devices", variant(AUTH, "Expired") + user(1), body=register("gcm", "fcm:token-1")),
    step("Put", "Sync", variant(AUTH, "NonUtf8") + blob(b"Bearer \xff\xfe"), advance="Week"),
    step("Get", variant(PATH, "Raw") + text("/internal/users/%31/devices"), admin="Padded"),
]))
