"""The live layer of a system that boots with BusyBox init (no init of its own).

What udev and a network manager do on a full system, BusyBox's applets do here:
- hardware: `mdev -s` fills /dev, `mdev -d` then loads the driver of every device the kernel
  announces (the `$MODALIAS` rule), and every device already present at boot gets its
  driver from its sysfs `modalias` (coldplug);
- network: the loopback link, then `udhcpc` on every wired interface in the background;
- logins on the screen and on the first serial port.
"""

from __future__ import annotations

INITTAB = """\
# Written by Livesmith: BusyBox init, a login on the screen and on the first serial port.
::sysinit:/etc/init.d/rcS
tty1::respawn:/sbin/getty{login} 38400 tty1
ttyS0::respawn:/sbin/getty{login} -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
"""


def inittab(autologin_program: str = "") -> str:
    """/etc/inittab; with `autologin_program`, getty runs it instead of asking for a name
    (-n) and /bin/login (-l): that program logs the live user in (see live.user)."""
    login = f" -n -l {autologin_program}" if autologin_program else ""
    return INITTAB.format(login=login)


DHCP_SCRIPT = "etc/livesmith/udhcpc.script"
FIRST_BOOT_SCRIPT = "etc/livesmith/first-boot"
FIRST_BOOT_DONE = "/var/lib/livesmith/first-boot-done"

RCS = f"""\
#!/bin/sh
# Written by Livesmith. The initramfs already moved /dev, /proc, /sys and /run here.
# (Debian's BusyBox has no mountpoint applet: /proc/mounts tells.)
[ -e /proc/mounts ] || mount -t proc proc /proc
grep -q " /sys " /proc/mounts || mount -t sysfs sysfs /sys
grep -q " /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -a
hostname -F /etc/hostname

# Hardware: device nodes, a driver for every device announced from now on (/etc/mdev.conf),
# then one for every device already there.
mdev -s
mdev -d
find /sys/devices -name modalias -type f -exec cat {{}} + 2>/dev/null | sort -u \\
    | xargs -r modprobe -a -q 2>/dev/null

# Network: DHCP on every wired interface, in the background.
ip link set lo up
for dev in /sys/class/net/*; do
    name=${{dev##*/}}
    [ "$name" = lo ] || [ -d "$dev/wireless" ] || [ "$(cat "$dev/type")" != 1 ] && continue
    ip link set "$name" up
    udhcpc -b -S -i "$name" -s /{DHCP_SCRIPT} >/dev/null 2>&1
done

# Services: the packages' init scripts linked as S??NAME (see live.services), in order.
for script in /etc/init.d/S[0-9][0-9]*; do
    [ -x "$script" ] && "$script" start
done

# The profile's first-boot script, if it has one.
if [ -x /{FIRST_BOOT_SCRIPT} ] && [ ! -e {FIRST_BOOT_DONE} ]; then
    /{FIRST_BOOT_SCRIPT}
    mkdir -p {FIRST_BOOT_DONE.rsplit("/", 1)[0]} && touch {FIRST_BOOT_DONE}
fi
"""

MDEV_CONF = """\
# Written by Livesmith: load the driver of each device the kernel announces.
$MODALIAS=.* 0:0 660 @modprobe -q "$MODALIAS"
"""

# udhcpc runs this with the lease in its environment ($ip, $mask, $router, $dns, $domain).
UDHCPC_SCRIPT = """\
#!/bin/sh
# Written by Livesmith: apply a DHCP lease from BusyBox udhcpc.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    for gateway in $router; do
        ip -4 route replace default via "$gateway" dev "$interface"
        break
    done
    {
        [ -n "$domain" ] && echo "search $domain"
        for server in $dns; do echo "nameserver $server"; done
    } > /etc/resolv.conf
    ;;
esac
exit 0
"""

# (root-relative path, content, mode): what install_busybox_init writes beside the links
# and /etc/inittab.
FILES: tuple[tuple[str, str, int], ...] = (
    ("etc/init.d/rcS", RCS, 0o755),
    ("etc/mdev.conf", MDEV_CONF, 0o644),
    (DHCP_SCRIPT, UDHCPC_SCRIPT, 0o755),
)
