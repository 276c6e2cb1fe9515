"""A small web app the tests run inside environments (the base image has python3
and nothing else): HTTP/1.1 with keep-alive (`/hello`, `/echo` returns the request
body, `/headers` the request headers as JSON, `/redirect` a relative redirect) and a
WebSocket echo on `/ws`, and `/page`, an HTML page whose script opens that WebSocket
and puts the echo in its title, in the standard library only."""

import time
from typing import Any

import httpx

APP = r"""
import asyncio, base64, hashlib, json, struct, sys
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

async def frame(r):
    b1, b2 = await r.readexactly(2)
    n = b2 & 0x7F
    if n == 126:
        n = struct.unpack(">H", await r.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", await r.readexactly(8))[0]
    mask = await r.readexactly(4) if b2 & 0x80 else b"\0\0\0\0"
    data = bytes(c ^ mask[i % 4] for i, c in enumerate(await r.readexactly(n)))
    return b1 & 0x0F, data

def pack(op, data):
    n = len(data)
    if n < 126:
        head = struct.pack(">BB", 0x80 | op, n)
    elif n < 65536:
        head = struct.pack(">BBH", 0x80 | op, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | op, 127, n)
    return head + data

async def ws(r, w, h):
    accept = base64.b64encode(hashlib.sha1(h["sec-websocket-key"].encode() + GUID).digest())
    extra = b""
    if h.get("sec-websocket-protocol"):
        chosen = h["sec-websocket-protocol"].split(",")[0].strip().encode()
        extra = b"Sec-WebSocket-Protocol: " + chosen + b"\r\n"
    w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n" + extra + b"\r\n")
    while True:
        op, data = await frame(r)
        if op == 8:
            w.write(pack(8, data[:2])); await w.drain(); return
        w.write(pack(10 if op == 9 else op, data)); await w.drain()

PAGE = b'''<!doctype html><title>loading</title><body><script>
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => ws.send("hello-from-browser");
ws.onmessage = (m) => { document.title = "echo:" + m.data; };
ws.onerror = () => { document.title = "ws-error"; };
</script></body>'''

async def handle(r, w):
    try:
        while True:
            head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            h = {}
            for line in head[1:]:
                if line:
                    k, _, v = line.partition(":")
                    h[k.strip().lower()] = v.strip()
            if h.get("upgrade", "").lower() == "websocket":
                await ws(r, w, h); return
            body = b""
            if "content-length" in h:
                body = await r.readexactly(int(h["content-length"]))
            elif h.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                    chunk = await r.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
            status, extra = b"200 OK", b""
            if target.startswith("/echo"):
                out = body
            elif target.startswith("/headers"):
                out = json.dumps(h).encode()
            elif target.startswith("/redirect"):
                status, extra, out = b"302 Found", b"Location: /hello\r\n", b""
            elif target.startswith("/page"):
                out = PAGE
            else:
                out = b"hello from inside\n"
            kind = b"text/html" if out is PAGE else b"text/plain"
            w.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(out) + extra
                    + b"Content-Type: " + kind + b"\r\n\r\n" + out)
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        w.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def start_app(api: httpx.Client, env: str, port: int) -> dict[str, Any]:
    """Run the app in the environment as a background process, until it answers."""
    response = api.post(
        f"/v1/environments/{env}/processes", json={"command": ["python3", "-c", APP, str(port)]}
    )
    assert response.status_code == 201, response.text
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = api.post(
            f"/v1/environments/{env}/exec", json={"command": ["python3", "-c", probe]}
        ).json()
        if result.get("exit_code") == 0:
            return dict(response.json())
        time.sleep(0.2)
    raise AssertionError("the app inside the environment did not come up")
