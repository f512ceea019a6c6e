"""A timed bulk TCP transfer with nothing but python3 (runs in the lab's namespaces and inside its guests, fed on
stdin: `python3 - serve ...`). Every wait is bounded.

  tcp_bulk.py serve ADDR PORT MAX_SECONDS   accept one connection, read to EOF; print JSON {bytes, seconds, mbit_s}
  tcp_bulk.py send HOST PORT SECONDS [SRC [MSS]]
                                            connect (from address SRC if given and not "-"; segments of at most
                                            MSS bytes if given), send zeros for SECONDS, close;
                                            print JSON {bytes, seconds}

The receiver's figure is the one to use: from its first byte to EOF. Only modules of Debian's python3-minimal
(the lab guests have no json module): the JSON is written by hand.
"""
import socket
import sys
import time


def serve(addr, port, max_seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    s.settimeout(max_seconds)
    deadline = time.monotonic() + max_seconds
    try:
        conn, _ = s.accept()
    except socket.timeout:
        print('{"error": "no connection"}')
        return 1
    conn.settimeout(10)
    total, first, last = 0, None, None
    while time.monotonic() < deadline:
        try:
            b = conn.recv(262144)
        except socket.timeout:
            break
        if not b:
            break
        now = time.monotonic()
        first = first or now
        last = now
        total += len(b)
    conn.close()
    secs = (last - first) if first and last and last > first else 0.0
    mbit_s = round(total * 8 / secs / 1e6, 2) if secs else 0.0
    print('{"bytes": %d, "seconds": %.3f, "mbit_s": %.2f}' % (total, secs, mbit_s))
    return 0


def send(host, port, seconds, src=None, mss=None):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if mss:
        # Before connect: it caps what this end sends and what it announces (tcp(7), TCP_MAXSEG).
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    if src:
        c.bind((src, 0))
    c.settimeout(10)
    c.connect((host, port))
    buf = b"\0" * 65536
    total, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        c.sendall(buf)
        total += len(buf)
    c.shutdown(socket.SHUT_WR)
    c.settimeout(10)
    try:
        c.recv(1)  # wait for the receiver to close: everything sent was read
    except OSError:
        pass
    c.close()
    print('{"bytes": %d, "seconds": %.3f}' % (total, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    mode, a, b, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    src = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "-" else None
    mss = int(sys.argv[6]) if len(sys.argv) > 6 else None
    sys.exit(serve(a, b, c) if mode == "serve" else send(a, b, c, src, mss))
