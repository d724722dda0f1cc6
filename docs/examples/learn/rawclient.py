"""Type HTTP by hand: send stdin's bytes to a server, print every byte it answers.

    printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' \\
        | python3 docs/examples/learn/rawclient.py 8000

`nc 127.0.0.1 8000` does the same where netcat is installed. This reads until the server
closes the connection (or 2 seconds pass with nothing new), so ask for `Connection: close`.
With `--repr` after the port, what follows the response head (WebSocket frames, say) is
printed as a Python bytes literal, so that bytes such as `\x81` can be read.
"""

from __future__ import annotations

import socket
import sys


def exchange(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass  # a keep-alive connection: the server is waiting for the next request
        return b"".join(chunks)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    answer = exchange(port, sys.stdin.buffer.read())
    if "--repr" in sys.argv[2:]:
        head, blank, rest = answer.partition(b"\r\n\r\n")
        sys.stdout.buffer.write(head + blank)
        print(repr(rest))
    else:
        sys.stdout.buffer.write(answer)
