#!/usr/bin/env python3
"""Open N keep-alive HTTP/1.1 connections to a front door and hold them idle.

Each connection sends one GET and reads its response, so the proxy has
served a request on it and keeps it open as an idle keep-alive connection.
Prints "ready N" once all are open, then holds them until stdin closes or
the process is killed.

    idle.py 127.0.0.1 18101 1000 backend
"""
import socket
import sys


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the response body")
        body += chunk
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise ConnectionError("status " + status.decode())


def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    authority = sys.argv[4] if len(sys.argv) > 4 else f"{host}:{port}"
    request = f"GET / HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    conns = []
    for _ in range(count):
        sock = socket.create_connection((host, port))
        sock.sendall(request)
        read_response(sock)
        conns.append(sock)
    print(f"ready {len(conns)}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
