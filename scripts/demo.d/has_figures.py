"""Exit 0 when `vpclink status --json` (the file named) shows, for both sides, figures published by the tunnel
host's agent with TunnelUp = 1; else print what is missing and exit 1."""
import json
import sys

try:
    status = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"  no status yet: {e}")
    sys.exit(1)
missing = []
for side in ("east", "west"):
    seen = next((m for m in status.get("metrics", []) if m.get("side") == side), None)
    up = [f["value"] for f in (seen or {}).get("figures", []) if f.get("metric") == "TunnelUp"]
    if not up or up[0] != 1:
        missing.append(f"{side}: TunnelUp {up[0] if up else 'not published yet'}")
if missing:
    print("  waiting for the agents' figures: " + "; ".join(missing))
    sys.exit(1)
sys.exit(0)
