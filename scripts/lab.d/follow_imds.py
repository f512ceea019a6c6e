"""The lab's instance metadata service for one tunnel guest, at 169.254.169.254 on its VPC router, following what
LocalStack says about the instance the guest stands in for: its metadata options (HttpTokens, hop limit, endpoint
on or off) and its IAM instance profile. No profile associated: no credentials, as on EC2.

What EC2 documents and this serves ("Use the Instance Metadata Service to access instance metadata", EC2 user
guide, IMDSv2):
- PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1-21600) returns a session token; a PUT without
  that header is 400, and a PUT carrying X-Forwarded-For is refused (403): "requests ... that contain an
  X-Forwarded-For header are rejected".
- With HttpTokens=required, a GET without a valid X-aws-ec2-metadata-token is 401.
- The hop limit is the IP TTL of the response packets (HttpPutResponseHopLimit, default 1 for new instances):
  the replies here are sent with that TTL, so a container or a forwarded request one hop further never gets them.
- /latest/meta-data/iam/security-credentials/ lists the role; .../ROLE returns
  {Code, LastUpdated, Type: AWS-HMAC, AccessKeyId, SecretAccessKey, Token, Expiration}.
LocalStack takes a 12-digit access key id as the account: the credentials served are the side's account's.
"""
import datetime
import http.server
import json
import secrets
import socket
import threading
import time

from follow_dns import log

MAX_TTL = 21600


class Instance:
    """What LocalStack says about the instance, refreshed by poll()."""

    def __init__(self, ec2, iam, instance_id, account):
        self.ec2, self.iam, self.instance_id, self.account = ec2, iam, instance_id, account
        self.lock = threading.Lock()
        self.tokens_required, self.hop_limit, self.enabled = True, 1, True
        self.role = None
        self.region, self.zone = None, None

    def poll(self):
        r = self.ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"][0]["Instances"][0]
        opts = r.get("MetadataOptions", {})
        assoc = self.ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [self.instance_id]},
                     {"Name": "state", "Values": ["associated"]}])["IamInstanceProfileAssociations"]
        role = None
        if assoc:
            name = assoc[0]["IamInstanceProfile"]["Arn"].split("/")[-1]
            roles = self.iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
            role = roles[0]["RoleName"] if roles else None
        with self.lock:
            before = (self.tokens_required, self.hop_limit, self.enabled, self.role)
            self.tokens_required = opts.get("HttpTokens", "required") == "required"
            self.hop_limit = int(opts.get("HttpPutResponseHopLimit", 1))
            self.enabled = opts.get("HttpEndpoint", "enabled") == "enabled"
            self.role = role
            self.zone = r.get("Placement", {}).get("AvailabilityZone")
            after = (self.tokens_required, self.hop_limit, self.enabled, self.role)
        if before != after:
            log(f"imds {self.instance_id}: tokens required {after[0]}, hop limit {after[1]}, "
                f"endpoint {'enabled' if after[2] else 'disabled'}, role {after[3]}")

    def snapshot(self):
        with self.lock:
            return self.tokens_required, self.hop_limit, self.enabled, self.role, self.zone


def handler_for(inst, tokens):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log("imds", self.client_address[0], fmt % args)

        def reply(self, code, body=b"", ctype="text/plain"):
            required, hop, _enabled, _role, _zone = inst.snapshot()
            # The hop limit is the TTL of what we send back.
            self.connection.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hop)
            if isinstance(body, str):
                body = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            _req, _hop, enabled, _role, _zone = inst.snapshot()
            if not enabled:
                return self.reply(404)
            if self.path != "/latest/api/token":
                return self.reply(404)
            if "X-Forwarded-For" in self.headers:
                return self.reply(403)
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if ttl is None or not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL:
                return self.reply(400)
            token = secrets.token_urlsafe(32)
            tokens[token] = time.time() + int(ttl)
            self.reply(200, token)

        def do_GET(self):
            required, _hop, enabled, role, zone = inst.snapshot()
            if not enabled:
                return self.reply(404)
            token = self.headers.get("X-aws-ec2-metadata-token")
            valid = token is not None and tokens.get(token, 0) > time.time()
            if (required or token is not None) and not valid:
                return self.reply(401)
            p = self.path
            if p == "/latest/meta-data/instance-id":
                return self.reply(200, inst.instance_id)
            if p == "/latest/meta-data/placement/availability-zone" and zone:
                return self.reply(200, zone)
            if p == "/latest/meta-data/placement/region" and zone:
                return self.reply(200, zone[:-1])
            for base in ("/latest/meta-data/iam/security-credentials", "/latest/meta-data/iam/security-credentials-extended"):
                if p in (base, base + "/"):
                    return self.reply(200, role) if role else self.reply(404)
                if role and p == f"{base}/{role}":
                    now = datetime.datetime.now(datetime.timezone.utc)
                    creds = {
                        "Code": "Success",
                        "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "Type": "AWS-HMAC",
                        "AccessKeyId": inst.account,
                        "SecretAccessKey": "test",
                        "Token": "lab-" + secrets.token_hex(16),
                        "Expiration": (now + datetime.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    if base.endswith("extended"):
                        creds["AccountId"] = inst.account
                    return self.reply(200, json.dumps(creds), "application/json")
            self.reply(404)

    return Handler


def serve(sock, inst, poll_interval):
    """Poll LocalStack in a thread; serve HTTP on the listening socket forever."""

    def follow():
        last_error = None
        while True:
            try:
                inst.poll()
                last_error = None
            except Exception as e:
                if str(e) != last_error:
                    log("imds poll failed:", e)
                last_error = str(e)
            time.sleep(poll_interval)

    threading.Thread(target=follow, daemon=True).start()
    server = http.server.ThreadingHTTPServer(sock.getsockname(), handler_for(inst, {}), bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.serve_forever()
