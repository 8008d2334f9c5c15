#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets, Fuzz/Corpus/<target>/<name> (a handful of meaningful inputs each),
and their libFuzzer dictionaries, Fuzz/Dictionaries/<target>.dict.

    python3 Fuzz/make-corpus.py

The seeds are committed; rerun this after changing it (it rewrites only the files it makes). Each input starts
with the option bytes its target documents at the top of Fuzz/Sources/<target>/main.swift.
"""
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "Corpus")
MASK = bytes([0x11, 0x22, 0x33, 0x44])


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as file:
        file.write(data if isinstance(data, bytes) else data.encode())


# --- frames -------------------------------------------------------------------------------------------------------

def frame(opcode, payload=b"", fin=True, rsv1=False, mask=MASK):
    """One frame; masked (a client's) unless mask is None."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    bit = 0x80 if mask else 0
    if len(payload) < 126:
        head += bytes([bit | len(payload)])
    elif len(payload) <= 0xFFFF:
        head += bytes([bit | 126]) + struct.pack(">H", len(payload))
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", len(payload))
    if mask:
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def deflate(message, wbits=15):
    """A permessage-deflate payload: raw deflate, sync-flushed, without the trailing 00 00 FF FF."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def close(code, reason=b""):
    return struct.pack(">H", code) + reason


def frames_seeds():
    server, client = 0x00, 0x01
    deflate_on = 0x02
    one_byte_reads, varying_reads, fixed_reads = 0x20, 0x30, 0x10
    echo, close_first = 0x40, 0x80
    hello = "Hello, WebSocket! Hello, WebSocket! Hello, WebSocket!".encode()
    seeds = {
        "server-text": (server, 0, 0, frame(1, b"Hello")),
        "server-binary-126": (server, 0, 0, frame(2, bytes(range(200)))),
        "server-fragmented-ping-between": (server | one_byte_reads, 0, 0,
                                           frame(1, b"Hel", fin=False) + frame(9, b"p") + frame(0, b"lo")),
        "server-close-normal": (server, 0, 0, frame(1, b"bye") + frame(8, close(1000, b"done"))),
        "server-ping-pong-echo": (server | echo, 0, 0, frame(9, b"ping") + frame(10, b"pong") + frame(1, "héllo".encode())),
        "server-unmasked-frame": (server, 0, 0, frame(1, b"x", mask=None)),
        "server-bad-utf8": (server, 0, 0, frame(1, b"\xc3\x28")),
        "server-close-1-byte": (server, 0, 0, frame(8, b"\x03")),
        # A 64-bit length whose payload has not all arrived yet.
        "server-64bit-length-partial": (server | varying_reads, 0, 0x10, frame(2, bytes(70000))[:300]),
        "server-deflate": (server | deflate_on, 0, 0, frame(1, deflate(hello), rsv1=True)),
        "server-deflate-echo": (server | deflate_on | echo, 0, 0x08,
                                frame(1, deflate(hello), rsv1=True) + frame(8, close(1001))),
        "server-deflate-fragmented": (server | deflate_on | fixed_reads, 0, 0x30,
                                      frame(1, deflate(hello)[:10], rsv1=True, fin=False) + frame(0, deflate(hello)[10:])),
        "server-deflate-no-context": (server | deflate_on | 0x0C | echo, 0x9A, 0x08,
                                      frame(2, deflate(hello, 10), rsv1=True) + frame(2, deflate(hello, 10), rsv1=True)),
        "server-deflate-corrupt": (server | deflate_on, 0, 0, frame(1, b"\xff\xff\xff\xff", rsv1=True)),
        "server-close-after-first": (server | close_first, 0, 0x04, frame(1, b"a") + frame(1, b"b")),
        "server-too-big": (server, 0, 0x02, frame(2, bytes(200))),
        "client-text": (client, 0, 0, frame(1, b"Hello", mask=None)),
        "client-masked-frame": (client, 0, 0, frame(1, b"x")),
        "client-close-echo": (client | echo, 0, 0, frame(1, b"hi", mask=None) + frame(8, close(1000), mask=None)),
        "client-deflate": (client | deflate_on, 0, 0, frame(1, deflate(hello), rsv1=True, mask=None)),
        "client-deflate-echo-window-9": (client | deflate_on | echo, 0x99, 0x08,
                                         frame(2, deflate(hello, 9), rsv1=True, mask=None) + frame(9, b"", mask=None)),
        "client-reserved-opcode": (client, 0, 0, frame(3, b"", mask=None)),
    }
    for name, (flags, windows, more, wire) in seeds.items():
        write("frames", name, bytes([flags, windows, more]) + wire)


# --- handshakes and extensions ------------------------------------------------------------------------------------

def request(*headers, method="GET", target="/chat?room=1", version="HTTP/1.1", body=""):
    lines = [f"{method} {target} {version}"] + list(headers)
    return "\r\n".join(lines) + "\r\n\r\n" + body


BASIC = ["Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]


def server_handshake_seeds():
    deflate_on = 0x01 | (7 << 3)
    seeds = {
        "valid": (0, request(*BASIC)),
        "subprotocols": (0, request(*BASIC, "Sec-WebSocket-Protocol: chat, superchat")),
        "deflate-offer": (deflate_on, request(*BASIC, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")),
        "deflate-offers": (deflate_on | 0x06 | 0x40, request(
            *BASIC, "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; client_no_context_takeover, "
            "permessage-deflate", "Sec-WebSocket-Extensions: x-webkit-deflate-frame")),
        "keep-alive-connection": (0, request("Host: a", "Connection: keep-alive, Upgrade", "Upgrade: WebSocket",
                                             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key:  AQIDBAUGBwgJCgsMDQ4PEA== ")),
        "missing-key": (0, request(*BASIC[:3], "Sec-WebSocket-Version: 13")),
        "version-8": (0, request(*BASIC[:4], "Sec-WebSocket-Version: 8")),
        "post": (0, request(*BASIC, method="POST")),
        "http-1.0": (0, request(*BASIC, version="HTTP/1.0")),
        "two-hosts": (0, request(*BASIC, "Host: other")),
        "pipelined": (0, request("Host: a") + request(*BASIC)),
        "with-body": (0, request(*BASIC, "Content-Length: 5", body="hello")),
        "small-limits": (0x80, request(*BASIC, target="/" + "a" * 80)),
    }
    for name, (flags, text) in seeds.items():
        write("server-handshake", name, bytes([flags]) + text.encode())


def response(status, *headers, body=""):
    return "\r\n".join([f"HTTP/1.1 {status}"] + list(headers)) + "\r\n\r\n" + body


UPGRADED = ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]


def client_handshake_seeds():
    deflate_on = 0x01 | (7 << 4)
    seeds = {
        "valid": (0, response("101 Switching Protocols", *UPGRADED)),
        "subprotocol": (0, response("101 Switching Protocols", *UPGRADED, "Sec-WebSocket-Protocol: chat")),
        "deflate": (deflate_on | 0x06, response(
            "101 Switching Protocols", *UPGRADED,
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
            "client_max_window_bits=12")),
        "deflate-not-offered": (0, response("101 Switching Protocols", *UPGRADED, "Sec-WebSocket-Extensions: permessage-deflate")),
        "wrong-accept": (0, response("101 Switching Protocols", *UPGRADED[:2], "Sec-WebSocket-Accept: AAAA")),
        "informational-first": (0, response("100 Continue") + response("101 Switching Protocols", *UPGRADED)),
        "redirect-relative": (0, response("302 Found", "Location: ../other/./room?x=2#frag", "Set-Cookie: session=abc; Path=/",
                                          "Content-Length: 0")),
        "redirect-absolute": (0x80, response("301 Moved Permanently", "Location: https://user:p%40ss@other.example:8443/x",
                                             "Content-Length: 0")),
        "redirect-ipv6": (0, response("307 Temporary Redirect", "Location: ws://[::1]:9000/a?b", "Content-Length: 0")),
        "redirect-bad-scheme": (0, response("308 Permanent Redirect", "Location: ftp://x/", "Content-Length: 0")),
        "not-found": (0, response("404 Not Found", "Content-Type: text/plain", "Content-Length: 10", body="no route\r\n")),
    }
    for name, (flags, text) in seeds.items():
        write("client-handshake", name, bytes([flags]) + text.encode())


def extension_seeds():
    seeds = {
        "offer-default": (0, "permessage-deflate; client_max_window_bits"),
        "offer-everything": (0x01 | 0x1C, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                                          "server_max_window_bits=10; client_max_window_bits=12"),
        "quoted-and-others": (0, 'permessage-deflate; client_max_window_bits="10", x-webkit-deflate-frame, foo; bar=baz'),
        "two-headers": (0x02, "foo, bar; baz=1\npermessage-deflate; server_max_window_bits=15"),
        "leading-zero": (0, "permessage-deflate; server_max_window_bits=08"),
        "repeated-parameter": (0, "permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
        "answer-for-window-request": (0x20 | 0x40, "permessage-deflate; server_max_window_bits=10; server_no_context_takeover"),
        "broken-quotes": (0, 'permessage-deflate; a="b, c'),
    }
    for name, (flags, text) in seeds.items():
        write("extensions", name, bytes([flags]) + text.encode())


# --- gateway: configuration, codecs, actions ------------------------------------------------------------------------

def config_seeds():
    repository = os.path.dirname(ROOT)
    for name in ["connector.yaml", "webhook.yaml"]:
        with open(os.path.join(repository, "examples", name), "rb") as file:
            write("config", "example-" + name, file.read())
    with open(os.path.join(repository, "docs", "configuration.md")) as file:
        text = file.read()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    write("config", "docs-outbound.yaml", block)
    write("config", "default.yaml", """listen: 127.0.0.1:8080
admin:
  listen: 127.0.0.1:9090
routes:
  - path: /echo
    handler: echo
  - path: /chat/{room}
    handler: broadcast
    groups: ["room:{room}"]
""")
    write("config", "everything.yaml", """listen: "[::1]:${PORT}"
base_path: /ws
admin: {listen: 0.0.0.0:9090, token: "${WSGATE_TOKEN:-0123456789abcdef0123}"}
limits: {max_connections: 100, max_frame_size: 64KiB, max_message_size: 1MiB, handshake_timeout: 5s,
         idle_timeout: 15m, idle_action: notify, close_timeout: 250ms, outbound_queue_size: 10KB,
         slow_consumer: drop, max_groups_per_socket: 8}
keepalive: {ping_interval: 25s, pong_timeout: 10s}
compression: {enabled: true, minimum_size: 64, level: 9}
rate_limit: {messages_per_second: 2.5, burst: 10, on_exceed: drop}
allowed_origins: [https://app.example.com]
log: {level: debug, format: json}
routes:
  - path: /feed/{topic}
    handler: forward
    group: "topic:{topic}"
    subprotocols: [v2.feed, v1.feed]
    codec: json
    preprocessors: [lines]
    postprocessors: [base64, lines]
    limits: {max_connections: 10, max_message_size: 512}
    rate_limit: {messages_per_second: 1}
    allowed_origins: [https://other.example.com]
  - path: /hook
    handler: webhook
    webhook: {url: "${BACKEND}", events: [open, data], timeout: 2s, retries: 1, backoff: 50ms, secret: s, concurrency: 4}
""")
    # Reproducers of crashes the target found (see Tests/GatewayDaemonTests/FuzzRegressionTests.swift).
    write("config", "crash-size-overflow.yaml", "routes:\n  - path: /a\n    handler: echo\n    limits: {max_message_size: 1e300KiB}\n")
    write("config", "crash-duration-overflow.yaml", "limits: {idle_timeout: 1e30h}\nroutes: [{path: /a, handler: echo}]\n")
    write("config", "crash-burst-overflow.yaml", "rate_limit: {messages_per_second: 1e300}\nroutes: [{path: /e, handler: echo}]\n")
    write("config", "crash-reconnect-overflow.yaml", """outbound:
  - socket_id: a
    url: ws://h/
    reconnect: {strategy: exponential, initial_interval: 1s, max_interval: 2000000h, growth: 1e300, jitter: 1}
routes: [{path: /e, handler: echo}]
""")


def codec_seeds():
    string, json, binary = 0, 1, 2

    def processors(*kinds):
        byte = len(kinds)
        for index, kind in enumerate(kinds):
            byte |= (1 if kind == "base64" else 0) << (2 + index)
        return byte

    seeds = {
        "json-messages": (json, 0, 0, b'{"id": 1, "x": "y"}\xff[1, 2.5e3, null, true]\xffnot json\xff{"id": "abc"}'),
        "string-lines": (string, processors("lines"), processors("lines"), b"a\nb\r\nc\xffrest\n"),
        "binary-base64": (binary, processors("base64"), processors("base64"), b"aGVsbG8gd29ybGQ=\xff\x00\x01\x02"),
        "json-base64-lines": (json, processors("lines", "base64"), processors("base64", "lines"),
                              b"eyJpZCI6IDJ9\nWzFd\n\xff{\"id\": 2}"),
        "invalid-utf8": (string, 0, 0x80 | processors("lines"), b"\xc3\x28\xffok\xff" + b"x" * 40),
    }
    for name, (format_, pre, post, body) in seeds.items():
        write("codecs", name, bytes([format_, pre, post]) + body)


def action_seeds():
    any_action, send, broadcast, close_ = 0, 1, 2, 3
    seeds = {
        "send": (any_action, '{"action": "send", "socket_id": "s1", "message": "hi", "type": "data-text"}'),
        "send-binary": (any_action, '{"action": "send", "socket_id": "s1", "message": "aGk=", "type": "data-binary"}'),
        "close": (any_action, '{"action": "close", "socket_id": "s1", "code": 4000, "reason": "bye"}'),
        "broadcast": (any_action, '{"action": "broadcast", "message": "hi", "groups": ["room:1"], "path": "/chat/1", '
                                  '"route": "/chat/{room}", "socket_type": "inbound", "exclude": ["s1"]}'),
        "attributes": (any_action, '{"action": "set_attribute", "socket_id": "s1", "name": "user", "value": "ann"}'),
        "webhook-answer": (any_action, '{"actions": [{"action": "send", "message": "welcome"}, {"action": "subscribe", '
                                       '"group": "lobby"}, {"action": "close", "code": 1.5}, {"action": "unsubscribe", '
                                       '"group": "a\\u0001b"}, {"action": "remove_attribute", "name": "user"}]}'),
        "admin-message": (send, '{"message": "hi", "type": "data-text"}'),
        "admin-broadcast": (broadcast, '{"message": "hi", "socket_type": "all", "groups": []}'),
        "admin-close": (close_, '{"code": 1000, "reason": "maintenance"}'),
        "unknown-field": (any_action, '{"action": "send", "socket_id": "s1", "message": "x", "extra": [1, {"a": null}]}'),
    }
    for name, (flags, text) in seeds.items():
        write("actions", name, bytes([flags]) + text.encode())


# --- dictionaries: tokens libFuzzer splices into inputs -------------------------------------------------------------

def dictionary(target, words):
    directory = os.path.join(ROOT, "Dictionaries")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, target + ".dict"), "w") as file:
        for word in sorted(set(words)):
            escaped = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c) for c in word)
            file.write('"%s"\n' % escaped)


def dictionaries():
    repository = os.path.dirname(ROOT)
    with open(os.path.join(repository, "docs", "configuration.md")) as file:
        keys = set()
        for line in file:
            if line.startswith("| `"):
                for key in line.split("|")[1].replace("`", " ").replace("/", " ").split():
                    keys.update(part for part in key.replace("[]", ".").split(".") if part)
    values = ["1e300", "1e30", "-1", "0", "inf", "nan", "0x10", "9223372036854775807", "ms", "s", "m", "h", "KiB",
              "MiB", "GiB", "KB", "${", "}", ":-", "[::1]:", "0.0.0.0:", "127.0.0.1:", "true", "false", "off", "auto",
              "echo", "broadcast", "forward", "webhook", "bridge", "none", "exponential", "fixed", "forever", "json",
              "string", "binary", "lines", "base64", "drop", "close", "notify", "reject_new", "drop_oldest", "basic",
              "bearer", "{", "[", ": ", "\n  - ", "\n    ", "ws://", "wss://", "http://", "&anchor", "*anchor", "!!str"]
    dictionary("config", [key + ": " for key in keys] + values)
    headers = ["Host: ", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: ", "Sec-WebSocket-Version: 13",
               "Sec-WebSocket-Protocol: ", "Sec-WebSocket-Extensions: ", "Sec-WebSocket-Accept: ", "Location: ",
               "Set-Cookie: ", "Content-Length: ", "Transfer-Encoding: chunked", "\r\n", "HTTP/1.1 ", "GET ",
               "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "101 Switching Protocols", "302 Found"]
    extensions = ["permessage-deflate", "server_no_context_takeover", "client_no_context_takeover",
                  "server_max_window_bits", "client_max_window_bits", "=", ";", ",", '"', "8", "9", "15", "16"]
    dictionary("server-handshake", headers + extensions + ["chat", "chat.v2", "mqtt"])
    dictionary("client-handshake", headers + extensions + ["chat", "superchat", "ws://", "wss://", "//", "../", "?", "#", "[::1]"])
    dictionary("extensions", extensions)
    fields = ["action", "socket_id", "message", "type", "code", "reason", "group", "name", "value", "path", "route",
              "groups", "exclude", "socket_type", "actions"]
    actions = ["send", "broadcast", "close", "close_all", "subscribe", "unsubscribe", "set_attribute", "remove_attribute",
               "data-text", "data-binary", "inbound", "outbound", "all", "1000", "4999", "1e2", "null", "true", "\\u0000"]
    dictionary("actions", ['"%s": ' % field for field in fields] + ['"%s"' % action for action in actions])


if __name__ == "__main__":
    frames_seeds()
    server_handshake_seeds()
    client_handshake_seeds()
    extension_seeds()
    config_seeds()
    codec_seeds()
    action_seeds()
    dictionaries()
