# vpclink verify, the near end of the TCP check.
# usage: python3 -c PROGRAM HOST PORT WINDOW
# Connects to HOST:PORT, trying again after a refusal or a timeout until WINDOW seconds have passed (the far end's
# listener starts at the same moment), then prints the line the far end sends and exits 0. Otherwise exits 1 with
# one line that says what happened:
#   "no TCP connection within W s: LAST ERROR"
#   "connected after T s, but the far end sent nothing within S s: ERROR"
#   "connected after T s, but the far end closed without answering"
import socket
import sys
import time

host, port, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
end = start + window
err = "no attempt made"
while True:
    left = end - time.monotonic()
    if left <= 0:
        print("no TCP connection within %g s: %s" % (window, err))
        sys.exit(1)
    try:
        s = socket.create_connection((host, port), timeout=min(2.0, left))
        break
    except OSError as e:
        err = str(e) or type(e).__name__
        time.sleep(min(0.25, max(0.0, end - time.monotonic())))
took = time.monotonic() - start
wait = max(1.0, end - time.monotonic())
s.settimeout(wait)
try:
    data = s.recv(200)
except OSError as e:
    print("connected after %.1f s, but the far end sent nothing within %.1f s: %s" % (took, wait, str(e) or type(e).__name__))
    sys.exit(1)
if not data:
    print("connected after %.1f s, but the far end closed without answering" % took)
    sys.exit(1)
print(data.decode(errors="replace").strip())
