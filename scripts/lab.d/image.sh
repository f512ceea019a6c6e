#!/bin/bash
# Build the lab's guest image: a Debian minbase root file system with a stock cloud kernel, turned into a raw
# ext4 image (no loop mount needed: mkfs.ext4 -d). Two flavours:
#   ready  libreswan and friends preinstalled, host keys made here and pinned by the lab (fast; the data-plane tests)
#   fresh  what a cloud image is: cloud-init (NoCloud seed disk), no libreswan, no iptables, no host keys, no user;
#          cloud-init makes the admin user, the host keys (printed to the console) and installs vpclink's packages
#          from the user-data, through the lab's package cache (apt proxy on the lab's internet segment)
#
#   image.sh OUTDIR AUTHORIZED_KEY_PUB SUITE FLAVOUR      SUITE: bookworm|trixie   FLAVOUR: ready|fresh
#
# Writes OUTDIR/base.img, OUTDIR/vmlinuz, OUTDIR/initrd.img, and for "ready" OUTDIR/ssh_host_ed25519_key.pub.
# The caller (scripts/lab) decides whether a rebuild is needed (recipe hash); this script always builds.
# Everything here runs on the host as root; nothing runs inside the guest.
set -euo pipefail

out=$1
authkey=$2
suite=${3:-bookworm}
flavour=${4:-ready}
cache=${VPCLINK_LAB_CACHE_URL:-http://192.0.2.10:3142}   # the lab's package cache, as the guests reach it
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mirror=${VPCLINK_LAB_MIRROR:-http://deb.debian.org/debian}

# The include list measured to work (lab-notes.md). bind9-host: libreswan depends on "host".
# python3-minimal: the TCP tests of `vpclink verify` may use it on the tunnel hosts.
# fresh: the packages of a Debian cloud image that matter here (cloud-init, sshd, sudo); vpclink's user-data must
# install the rest (libreswan, iptables, tcpdump), as on AWS.
case $flavour in
    ready)
        include=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,libreswan,iptables,iproute2,tcpdump
        include=$include,iputils-ping,kmod,procps,netbase,ifupdown,less,bind9-host,sudo,python3-minimal
        # The metrics agent's SDK (what vpclink's user-data installs on Debian), and ethtool for the ENA counters.
        include=$include,python3-boto3,ethtool ;;
    fresh)
        include=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,cloud-init,iproute2,iputils-ping
        # python3-cffi-backend: provides the virtual python3-cffi-backend-api-* that trixie's python3-cryptography
        # (a cloud-init dependency) needs on bookworm and trixie; debootstrap does not resolve virtual packages by itself.
        # e2fsprogs: cloud-init's resizefs runs resize2fs at every boot (trixie's minbase no longer has it).
        include=$include,kmod,procps,netbase,less,sudo,python3,ca-certificates,python3-cffi-backend,e2fsprogs ;;
    *) echo "image.sh: flavour must be ready or fresh" >&2; exit 2 ;;
esac

work=$out.build
rm -rf "$work"
mkdir -p "$work"
root=$work/rootfs

echo "lab: debootstrap $suite minbase, $flavour (1-2 min)"
t0=$SECONDS
debootstrap --variant=minbase --include="$include" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    echo "lab: debootstrap failed; full log in $work/debootstrap.log" >&2
    exit 1
}
echo "lab: debootstrap done in $((SECONDS - t0)) s"

# --- customize the root file system -------------------------------------------------------------
echo vl-guest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo '/dev/vda / ext4 defaults,noatime 0 1' >"$root/etc/fstab"
: >"$root/etc/resolv.conf"   # no DNS in the lab: the guests only talk to lab addresses

# ready: kernel modules the data plane needs, loaded at boot so nothing depends on autoload. fresh: none, as on a
# cloud image; vpclink's host preparation must load them itself.
# nft_compat: Debian's iptables is iptables-nft, its xtables matches/targets go through nft_compat.
# Named lab-*, not vpclink-*: configure writes vpclink-LINK.conf there, and the lab link is named "lab".
[ "$flavour" = ready ] && cat >"$root/etc/modules-load.d/lab-data-plane.conf" <<'EOF'
ip_gre
esp4
xfrm_user
xfrm_algo
nf_tables
nft_compat
nft_chain_nat
xt_NETMAP
xt_policy
xt_TCPMSS
xt_conntrack
iptable_nat
iptable_filter
iptable_mangle
EOF

# A small initramfs: only what is needed to find the virtio root disk.
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >>"$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all >"$work/initramfs.log" 2>&1

rm -f "$root"/etc/ssh/ssh_host_*
if [ "$flavour" = ready ]; then
    # The admin user vpclink logs in as: passwordless sudo, the lab's key.
    chroot "$root" useradd -m -s /bin/bash -G sudo admin
    echo 'admin ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/90-admin"
    chmod 0440 "$root/etc/sudoers.d/90-admin"
    install -d -m 0700 -o 1000 -g 1000 "$root/home/admin/.ssh"
    install -m 0600 -o 1000 -g 1000 "$authkey" "$root/home/admin/.ssh/authorized_keys"
    # SSH host keys: made once here (ssh-keygen -A under TCG costs ~11 s a boot) and pinned by the lab state.
    ssh-keygen -q -t ed25519 -N '' -C '' -f "$root/etc/ssh/ssh_host_ed25519_key"
    echo 'HostKey /etc/ssh/ssh_host_ed25519_key' >"$root/etc/ssh/sshd_config.d/vpclink-lab-hostkey.conf"
else
    # As Debian's cloud images do: cloud-init reads its data source (here NoCloud: the lab's seed disk labelled
    # cidata, https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html), makes the default user
    # "admin" (the login of Debian's AMIs) with the meta-data's public key, makes the host keys on first boot and
    # prints them to the console (keys_to_console). Networking is the lab's part (vl-identity plays the VPC's DHCP).
    cat >"$root/etc/cloud/cloud.cfg.d/01-vpclink-lab.cfg" <<'EOF'
datasource_list: [ NoCloud, None ]
network: {config: disabled}
# C.UTF-8 is built into glibc; the default en_US.UTF-8 needs the locales package, which minbase lacks (bookworm's
# cloud-init 22 then fails its locale module and reports "error").
locale: C.UTF-8
system_info:
  default_user:
    name: admin
    lock_passwd: true
    gecos: Debian
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
EOF
    # The guests' only way to packages: the lab's cache on the internet segment (apt's http proxy). The sources
    # stay what debootstrap wrote, as on a cloud image; the proxy is what the lab's "cloud" adds.
    echo "Acquire::http::Proxy \"$cache\";" >"$root/etc/apt/apt.conf.d/90-vpclink-lab-cache"
fi
cat >"$root/etc/ssh/sshd_config.d/vpclink-lab.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF

# Identity from the kernel command line (vl.*), applied by a oneshot unit before sshd starts,
# and a READY marker on the serial console once sshd runs.
install -m 0755 "$here/guest/vl-identity" "$root/usr/local/sbin/vl-identity"
install -m 0644 "$here/guest/vl-identity.service" "$root/etc/systemd/system/vl-identity.service"
install -m 0644 "$here/guest/vl-ready.service" "$root/etc/systemd/system/vl-ready.service"
ln -sf /etc/systemd/system/vl-identity.service "$root/etc/systemd/system/multi-user.target.wants/vl-identity.service"
mkdir -p "$root/etc/systemd/system/network-online.target.wants"
ln -sf /etc/systemd/system/vl-identity.service "$root/etc/systemd/system/network-online.target.wants/vl-identity.service"
ln -sf /etc/systemd/system/vl-ready.service "$root/etc/systemd/system/multi-user.target.wants/vl-ready.service"

# Trim boot: nothing in the lab needs these, and under TCG every unit costs time.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    man-db.timer dpkg-db-backup.timer systemd-timesyncd.service networking.service ipsec.service; do
    rm -f "$root"/etc/systemd/system/*.wants/"$u"
done
# libreswan is enabled by the package; leave it to `vpclink configure` to enable (it must, on real hosts too).
[ "$flavour" = ready ] && { chroot "$root" systemctl disable ipsec.service >/dev/null 2>&1 || true; }
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

# --- the artifacts ------------------------------------------------------------------------------
# /vmlinuz links are not made on every release: take /boot's newest kernel and initrd.
cp -L "$(ls -1 "$root"/boot/vmlinuz-* | sort -V | tail -n 1)" "$work/vmlinuz"
cp -L "$(ls -1 "$root"/boot/initrd.img-* | sort -V | tail -n 1)" "$work/initrd.img"
arts="$work/base.img $work/vmlinuz $work/initrd.img"
if [ "$flavour" = ready ]; then
    awk '{print $1" "$2}' "$root/etc/ssh/ssh_host_ed25519_key.pub" >"$work/ssh_host_ed25519_key.pub"
    arts="$arts $work/ssh_host_ed25519_key.pub"
fi
truncate -s 3G "$work/base.img"
mkfs.ext4 -q -F -L vlroot -d "$root" "$work/base.img"
mv $arts "$out/"
rm -rf "$work"
echo "lab: image built in $((SECONDS - t0)) s"
