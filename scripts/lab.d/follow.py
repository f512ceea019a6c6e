"""The lab follows the emulator: services a VPC gives its instances, answered from what LocalStack holds.

    follow.py vpc --netns vl-east-vpc --vpc vpc-... --region us-east-1 --profile east [--instance i-...]
        the VPC's resolver on 10.0.0.2:53 (Route 53 private zones associated with the VPC: follow_dns.py) and, with
        --instance, the instance metadata service on 169.254.169.254:80 for the tunnel guest standing in for that
        instance (follow_imds.py)
    follow.py relay --listen 192.0.2.10:4566 --to 127.0.0.1:4566
        the AWS API endpoint as the guests reach it (through the lab's internet segment) relayed to LocalStack

It runs in this machine's own network namespace (it talks to LocalStack on loopback) and opens its listening sockets
inside the VPC router's namespace (setns, then back): a socket keeps the namespace it was made in. The profile's
endpoint_url and credentials come from AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE, as the AWS CLI's do.
"""
import argparse
import os
import socket
import sys
import threading

import follow_dns
import follow_imds
from follow_dns import log


def socket_in(netns, kind, addr, port):
    own = open("/proc/self/ns/net")
    target = open(f"/run/netns/{netns}")
    try:
        os.setns(target.fileno(), os.CLONE_NEWNET)
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        if kind == socket.SOCK_STREAM:
            s.listen(64)
    finally:
        os.setns(own.fileno(), os.CLONE_NEWNET)
        own.close()
        target.close()
    return s


def vpc(a):
    import boto3

    session = boto3.Session(profile_name=a.profile, region_name=a.region)
    zones = follow_dns.Zones(session.client("route53"), a.vpc, a.region)
    dns = socket_in(a.netns, socket.SOCK_DGRAM, a.dns, 53)
    threading.Thread(target=follow_dns.serve, args=(dns, zones, a.interval), daemon=True).start()
    log(f"resolver for {a.vpc} on {a.dns}:53 in {a.netns}")
    if a.instance:
        account = session.client("sts").get_caller_identity()["Account"]
        inst = follow_imds.Instance(session.client("ec2"), session.client("iam"), a.instance, account)
        imds = socket_in(a.netns, socket.SOCK_STREAM, a.imds, 80)
        threading.Thread(target=follow_imds.serve, args=(imds, inst, a.interval), daemon=True).start()
        log(f"metadata service for {a.instance} on {a.imds}:80 in {a.netns}")
    threading.Event().wait()


def pump(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(a):
    host, port = a.listen.rsplit(":", 1)
    to_host, to_port = a.to.rsplit(":", 1)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(64)
    log(f"relay {a.listen} -> {a.to}")
    while True:
        c, peer = ls.accept()
        try:
            u = socket.create_connection((to_host, int(to_port)), timeout=5)
            u.settimeout(None)
        except OSError as e:
            log("relay: upstream", a.to, "refused:", e)
            c.close()
            continue
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("vpc")
    v.add_argument("--netns", required=True)
    v.add_argument("--vpc", required=True)
    v.add_argument("--region", required=True)
    v.add_argument("--profile", required=True)
    v.add_argument("--instance")
    v.add_argument("--dns", default="10.0.0.2")
    v.add_argument("--imds", default="169.254.169.254")
    v.add_argument("--interval", type=float, default=0.5)
    r = sub.add_parser("relay")
    r.add_argument("--listen", required=True)
    r.add_argument("--to", required=True)
    a = ap.parse_args()
    return vpc(a) if a.cmd == "vpc" else relay(a)


if __name__ == "__main__":
    sys.exit(main())
