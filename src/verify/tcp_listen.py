# vpclink verify, the far end of the TCP check (run on the far side's test host, or its tunnel host).
# usage: python3 -c PROGRAM PORT TOKEN LIFETIME
# Accepts one connection on PORT, answers "TOKEN SOURCE" (SOURCE: the address the connection came from, which must
# be the near side's mapped address: proof that NETMAP rewrote it) and exits. Gives up after LIFETIME seconds, so a
# dead link leaves no listener behind for the next run.
import socket
import sys

port, token, lifetime = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(1)
s.settimeout(lifetime)
try:
    c, a = s.accept()
except OSError:
    sys.exit(1)
c.sendall((token + " " + a[0] + "\n").encode())
c.close()
