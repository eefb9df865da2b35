#!/bin/sh
# PID 1 of the VM tests' busybox initramfs (built and cached by tests/src/vm.rs).
#
# Kernel command line:
#   bbwd.mode=busybox   load bbwd.wd (i6300esb | softdog | none), mount the host's 9p share on
#                       /mnt/host, copy its sysroot/ (host-built binaries and their shared
#                       libraries) into this root, run /mnt/host/run.sh, power off.
#   bbwd.mode=systemd   mount the ext4 rootfs on /dev/vda and switch_root to systemd.
#   bbwd.net=A/P        (systemd mode) load virtio_net, bring eth0 up with address A/P (qemu's
#                       user-mode network; the rootfs has neither modules nor `ip`). The kernel
#                       keeps the address across switch_root; nothing in the guest changes it.
# Console lines meant for the host start with "BBWD-VM: ".
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "BBWD-VM: $*"; }
fail() { say "init failed: $*"; poweroff -f; }

MODE=busybox WD=none NET=
for a in $(cat /proc/cmdline); do
  case $a in
    bbwd.mode=*) MODE=${a#bbwd.mode=} ;;
    bbwd.net=*) NET=${a#bbwd.net=} ;;
    bbwd.wd=*) WD=${a#bbwd.wd=} ;;
  esac
done

if [ "$MODE" = systemd ]; then
  # The rootfs has no modules of its own: its root disk and its /mnt/host (fstab) need these.
  modprobe -a virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p || fail "modprobe (systemd)"
  if [ -n "$NET" ]; then
    modprobe virtio_net || fail "modprobe virtio_net"
    i=0; while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
    ip link set eth0 up || fail "eth0 up"
    ip addr add "$NET" dev eth0 || fail "address $NET on eth0"
  fi
  mkdir -p /newroot
  mount -t ext4 -o rw /dev/vda /newroot || fail "mount /dev/vda"
  umount /proc /sys
  mount --move /dev /newroot/dev
  exec switch_root /newroot /sbin/init
fi

modprobe -a virtio_pci 9pnet_virtio 9p || fail "modprobe 9p"
case $WD in
  i6300esb|softdog) modprobe "$WD" || fail "modprobe $WD" ;;
  none) ;;
  *) fail "unknown bbwd.wd=$WD" ;;
esac
mkdir -p /mnt/host /tmp /run /var/lib
mount -t tmpfs tmp /tmp
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostshare /mnt/host || fail "mount 9p"
[ -d /mnt/host/sysroot ] && cp -a /mnt/host/sysroot/. /
ip link set lo up
say "init done uptime=$(cut -d' ' -f1 /proc/uptime)"
/bin/sh /mnt/host/run.sh
say "run.sh exited rc=$?"
poweroff -f
