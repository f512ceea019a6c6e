#!/bin/bash
# Build the lab's guest image: a Debian bookworm minbase root file system with a stock cloud kernel,
# libreswan and friends, turned into a raw ext4 image (no loop mount needed: mkfs.ext4 -d).
#
#   image.sh OUTDIR AUTHORIZED_KEY_PUB
#
# Writes OUTDIR/base.img, OUTDIR/vmlinuz, OUTDIR/initrd.img, OUTDIR/ssh_host_ed25519_key.pub.
# The caller (scripts/lab) decides whether a rebuild is needed (recipe hash); this script always builds.
# Everything here runs on the host as root; nothing runs inside the guest.
set -euo pipefail

out=$1
authkey=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mirror=${VPCLINK_LAB_MIRROR:-http://deb.debian.org/debian}

# The include list measured to work (lab-notes.md). bind9-host: libreswan depends on "host".
# python3-minimal: the TCP tests of `vpclink verify` may use it on the tunnel hosts.
include=linux-image-cloud-amd64,systemd-sysv,udev,dbus,openssh-server,libreswan,iptables,iproute2,tcpdump
include=$include,iputils-ping,kmod,procps,netbase,ifupdown,less,bind9-host,sudo,python3-minimal

work=$out.build
rm -rf "$work"
mkdir -p "$work"
root=$work/rootfs

echo "lab: debootstrap bookworm minbase (1-2 min)"
t0=$SECONDS
debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
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

# Kernel modules the data plane needs, loaded at boot so nothing depends on autoload.
# nft_compat: Debian's iptables is iptables-nft, its xtables matches/targets go through nft_compat.
# Named lab-*, not vpclink-*: configure writes vpclink-LINK.conf there, and the lab link is named "lab".
cat >"$root/etc/modules-load.d/lab-data-plane.conf" <<'EOF'
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

# The admin user vpclink logs in as: passwordless sudo, the lab's key.
chroot "$root" useradd -m -s /bin/bash -G sudo admin
echo 'admin ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/90-admin"
chmod 0440 "$root/etc/sudoers.d/90-admin"
install -d -m 0700 -o 1000 -g 1000 "$root/home/admin/.ssh"
install -m 0600 -o 1000 -g 1000 "$authkey" "$root/home/admin/.ssh/authorized_keys"

# SSH host keys: made once here (ssh-keygen -A under TCG costs ~11 s a boot) and pinned by the lab state.
rm -f "$root"/etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -C '' -f "$root/etc/ssh/ssh_host_ed25519_key"
cat >"$root/etc/ssh/sshd_config.d/vpclink-lab.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
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
chroot "$root" systemctl disable ipsec.service >/dev/null 2>&1 || true
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin

# --- the artifacts ------------------------------------------------------------------------------
cp -L "$root/vmlinuz" "$work/vmlinuz"
cp -L "$root/initrd.img" "$work/initrd.img"
awk '{print $1" "$2}' "$root/etc/ssh/ssh_host_ed25519_key.pub" >"$work/ssh_host_ed25519_key.pub"
truncate -s 2G "$work/base.img"
mkfs.ext4 -q -F -L vlroot -d "$root" "$work/base.img"
mv "$work/base.img" "$work/vmlinuz" "$work/initrd.img" "$work/ssh_host_ed25519_key.pub" "$out/"
rm -rf "$work"
echo "lab: image built in $((SECONDS - t0)) s"
