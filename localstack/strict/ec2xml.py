"""Small helpers for EC2 Query API XML: error bodies, parsing, and removing items from Describe responses."""
import threading
import uuid
import xml.etree.ElementTree as ET

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
ET.register_namespace("", EC2_NS)
_lock = threading.Lock()


def error_body(code, message):
    """EC2's error format (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html#api-error-response)."""
    msg = (message or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code><Message>%s</Message>'
        "</Error></Errors><RequestID>%s</RequestID></Response>" % (code, msg, uuid.uuid4())
    ).encode()


def local(tag):
    return tag.rsplit("}", 1)[-1]


def parse(body):
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def child(el, name):
    if el is None:
        return None
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def text(el, *path):
    for name in path:
        el = child(el, name)
        if el is None:
            return None
    return el.text


def items(el, *path):
    """The <item> children of the element at path (a list; empty when absent)."""
    for name in path:
        el = child(el, name)
        if el is None:
            return []
    return [c for c in el if local(c.tag) == "item"]


def serialize(root):
    with _lock:
        return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def remove_items(root, set_path, pred):
    """Remove <item> children of the element at set_path for which pred(item) is true; return how many."""
    el = root
    for name in set_path:
        el = child(el, name)
        if el is None:
            return 0
    gone = [c for c in el if local(c.tag) == "item" and pred(c)]
    for c in gone:
        el.remove(c)
    return len(gone)
