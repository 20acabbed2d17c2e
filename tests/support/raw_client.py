"""A signing-socket client written against docs/signing-protocol.md alone.

Run as a child (often as another user, with the system interpreter): no
edgeagent import. ``argv[1]`` is the socket path; each script appends its
own conversation after this preamble, which defines ``ask(request)``
(None when the server closed the connection).
"""

PREAMBLE = """
import json, socket, struct, sys
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.settimeout(20)
conn.connect(sys.argv[1])
def read(size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
def ask(request):
    body = json.dumps(request).encode()
    conn.sendall(struct.pack(">I", len(body)) + body)
    header = read(4)
    if header is None:
        return None
    body = read(struct.unpack(">I", header)[0])
    return None if body is None else json.loads(body)
"""
