"""The strict layer's Route 53 rules (REST-XML, API version 2013-04-01): what the Route 53 API reference documents and
LocalStack lets through. Called by proxy.py for every request whose SigV4 credential scope names the route53
service; anything else passes. Stdlib only.

- CreateHostedZone with a CallerReference this account already used: HostedZoneAlreadyExists (HTTP 409), "Amazon
  Route 53 returns this error when a hosted zone has already been created with the specified CallerReference"
  (https://docs.aws.amazon.com/Route53/latest/APIReference/API_CreateHostedZone.html#API_CreateHostedZone_Errors).
  LocalStack makes a second zone.
- ChangeResourceRecordSets over the documented limits: "A request cannot contain more than 1,000 ResourceRecord
  elements", "The sum of the number of characters (including spaces) in all Value elements in a request can't exceed
  32,000 characters", and at most 100 Change elements per request; refused InvalidChangeBatch (HTTP 400)
  (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html#limits-api-requests-changeresourcerecordsets).
- CREATE of a record set (name and type) the zone already holds: "CREATE: Creates a resource record set that has the
  specified values" and "If you try to create a record that already exists, the request fails"
  (https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html): InvalidChangeBatch.
  LocalStack overwrites it.
"""
import re
import threading
import uuid
import xml.etree.ElementTree as ET

NS = "https://route53.amazonaws.com/doc/2013-04-01/"
MAX_CHANGES = 100
MAX_RECORDS = 1000
MAX_VALUE_CHARS = 32000

ZONE_RE = re.compile(r"^/2013-04-01/hostedzone/?$")
RRSET_RE = re.compile(r"^/2013-04-01/hostedzone/([^/]+)/rrset/?$")

_lock = threading.Lock()
_references = {}  # account -> set of CallerReferences used


class Refusal(Exception):
    def __init__(self, status, code, message, rule):
        super().__init__(message)
        self.status, self.code, self.message, self.rule = status, code, message, rule


def error_body(code, message):
    """Route 53's error format: ErrorResponse/Error/{Type,Code,Message} and RequestId."""
    msg = (message or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<?xml version="1.0"?>\n<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code>'
        "<Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>" % (NS, code, msg, uuid.uuid4())
    ).encode()


def _local(tag):
    return tag.rsplit("}", 1)[-1]


def _find_all(root, name):
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(elem, name):
    for e in elem.iter():
        if _local(e.tag) == name:
            return (e.text or "").strip()
    return ""


def _fqdn(name):
    return name.strip().lower().rstrip(".") + "."


def check_batch(root):
    """The documented limits of one ChangeResourceRecordSets request (raises Refusal)."""
    changes = _find_all(root, "Change")
    values = [(v.text or "") for v in _find_all(root, "Value")]
    records = len(_find_all(root, "ResourceRecord"))
    if len(changes) > MAX_CHANGES:
        raise Refusal(400, "InvalidChangeBatch", "Number of changes limit of %d exceeded: %d" % (MAX_CHANGES, len(changes)),
                      "route53_batch_changes")
    if records > MAX_RECORDS:
        raise Refusal(400, "InvalidChangeBatch", "Number of records limit of %d exceeded: %d" % (MAX_RECORDS, records),
                      "route53_batch_records")
    if sum(len(v) for v in values) > MAX_VALUE_CHARS:
        raise Refusal(400, "InvalidChangeBatch", "Number of characters in Value elements exceeds %d" % MAX_VALUE_CHARS,
                      "route53_batch_chars")
    return [(_text(c, "Action").upper(), _fqdn(_text(c, "Name")), _text(c, "Type").upper()) for c in changes]


def existing_sets(zone_id, headers, backend):
    """(name, type) of every record set in the zone, read from the backend with the caller's own headers."""
    out, start = set(), ""
    while True:
        path = "/2013-04-01/hostedzone/%s/rrset%s" % (zone_id, start)
        status, _, data = backend.request("GET", path, None, headers)
        if status != 200:
            return out
        root = ET.fromstring(data)
        for s in _find_all(root, "ResourceRecordSet"):
            out.add((_fqdn(_text(s, "Name")), _text(s, "Type").upper()))
        if _text(root, "IsTruncated") != "true":
            return out
        start = "?name=%s&type=%s" % (_text(root, "NextRecordName"), _text(root, "NextRecordType"))


def handle(method, path, headers, body, account, forward, backend):
    """A response (status, headers, body) when a rule decides, else the forwarded response; Refusal on a refusal."""
    try:
        return _handle(method, path.split("?", 1)[0], headers, body, account, forward, backend)
    except ET.ParseError:
        return forward()  # not ours to judge: Route 53 itself answers a malformed body


def _handle(method, path, headers, body, account, forward, backend):
    if method == "POST" and ZONE_RE.match(path):
        root = ET.fromstring(body)
        ref = _text(root, "CallerReference")
        with _lock:
            used = _references.setdefault(account, set())
            if ref in used:
                raise Refusal(409, "HostedZoneAlreadyExists",
                              "A hosted zone has already been created with the specified caller reference.",
                              "route53_caller_reference")
        status, hdrs, data = forward()
        if 200 <= status < 300:
            with _lock:
                _references[account].add(ref)
        return status, hdrs, data
    m = RRSET_RE.match(path)
    if method == "POST" and m:
        root = ET.fromstring(body)
        changes = check_batch(root)
        creates = [(n, t) for a, n, t in changes if a == "CREATE"]
        if creates:
            fwd_headers = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "content-type")}
            have = existing_sets(m.group(1), fwd_headers, backend)
            for n, t in creates:
                if (n, t) in have:
                    raise Refusal(400, "InvalidChangeBatch",
                                  "[Tried to create resource record set [name='%s', type='%s'] but it already exists]" % (n, t),
                                  "route53_create_existing")
        return forward()
    return forward()
