"""Exit 0 when `vpclink status --json` (the file named) shows, for both sides, figures published by the tunnel
host's agent with TunnelUp, IkeSaUp and EspSaUp = 1 (the last two parsed from the real libreswan's own output, 4 or
5); else print what is missing and exit 1."""
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
    for metric in ("TunnelUp", "IkeSaUp", "EspSaUp"):
        v = [f["value"] for f in (seen or {}).get("figures", []) if f.get("metric") == metric]
        if not v or v[0] != 1:
            missing.append(f"{side}: {metric} {v[0] if v else 'not published yet'}")
if missing:
    print("  waiting for the agents' figures: " + "; ".join(missing))
    sys.exit(1)
sys.exit(0)
