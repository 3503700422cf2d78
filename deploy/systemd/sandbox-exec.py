#!/usr/bin/python3
"""Runs a command under the restrictions a systemd unit asks for, read from the unit file
itself, for deploy/systemd/sandbox-test.sh. This is not systemd (it is not PID 1 here, so
units cannot be started); it applies by hand, with the kernel mechanisms systemd uses, what
decides whether Doorward's binaries can run inside the unit:

  in the mount namespace `unshare --mount` gave it (PrivateMounts=):
    ProtectSystem=strict       every mount read-only but /dev, /proc, /sys and the
                               writable paths (SANDBOX_WRITABLE: the stand-ins for
                               StateDirectory= and RuntimeDirectory=)
    PrivateTmp=yes             empty tmpfs on /tmp and /var/tmp
    ProtectHome=yes            empty read-only tmpfs on /home, /root, /run/user
    PrivateDevices=yes         /dev with null, zero, full, random, urandom, tty, shm only
    ProtectKernelTunables=yes  /sys and /proc/sys read-only (ProtectControlGroups: cgroups too)
    ProtectProc=invisible,     a procfs of its own with hidepid=invisible,subset=pid
    ProcSubset=pid
  then, for the process and what it runs:
    UMask=                     umask
    a non-root user            setuid/setgid to the given IDs
    CapabilityBoundingSet=     (empty) every capability dropped from the bounding set
    NoNewPrivileges=yes        prctl(PR_SET_NO_NEW_PRIVS)
    MemoryDenyWriteExecute=yes the kernel's own rule, prctl(PR_SET_MDWE)
    SystemCallFilter=,         a seccomp filter with the same allow list (groups expanded
    SystemCallErrorNumber=     by systemd-analyze itself) and error number
    RestrictAddressFamilies=   socket() refused for any other family
    RestrictNamespaces=yes     unshare/setns refused, clone with namespace flags refused,
                               clone3 answered ENOSYS (as systemd does, so libc falls back)
    LockPersonality=yes        personality() only to query or keep PER_LINUX
    RestrictSUIDSGID=yes       chmod family refused with setuid/setgid bits

Not applied: PrivateUsers=, ProtectHostname= and ProtectClock= (namespaces and device
rules), DynamicUser=, RemoveIPC=, KeyringMode=.

Usage: unshare --mount -- sandbox-exec.py UNIT_FILE UID GID COMMAND [ARG...]
Needs Debian's python3-seccomp (run with /usr/bin/python3).
"""

import ctypes
import errno
import os
import re
import socket
import subprocess
import sys

import seccomp

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
CAP_LAST = 40

unit_path, uid, gid, command = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
settings = {}
for line in open(unit_path):
    m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
    if m:
        settings.setdefault(m.group(1), []).append(m.group(2).strip())


def groups():
    """Every syscall group, as systemd-analyze lists them: name -> members."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    table, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            table[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            table[current].append(line.strip())
    return table


GROUPS = groups()


def expand(item, seen=None):
    seen = seen or set()
    if not item.startswith("@"):
        return {item}
    if item in seen:
        return set()
    seen.add(item)
    if item not in GROUPS:
        raise SystemExit(f"sandbox-exec: unknown syscall group {item}")
    names = set()
    for member in GROUPS[item]:
        names |= expand(member, seen)
    return names


# SystemCallFilter= lines accumulate: a plain line adds to the allow list, a ~ line removes.
allowed = set()
for value in settings.get("SystemCallFilter", []):
    deny = value.startswith("~")
    items = set()
    for word in value.lstrip("~").split():
        items |= expand(word)
    allowed = allowed - items if deny else allowed | items
if not allowed:
    raise SystemExit("sandbox-exec: the unit has no SystemCallFilter= allow list")
errno_name = (settings.get("SystemCallErrorNumber") or ["EPERM"])[-1]
families = (settings.get("RestrictAddressFamilies") or [""])[-1].split()

libc = ctypes.CDLL(None, use_errno=True)


def prctl(option, arg):
    if libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise SystemExit(f"sandbox-exec: prctl({option}, {arg}) failed: {os.strerror(e)}")


def last(key, default=""):
    return (settings.get(key) or [default])[-1]


def mount(*args):
    subprocess.run(["mount", *args], check=True)


def mount_points():
    points = []
    for line in open("/proc/self/mountinfo"):
        points.append(line.split()[4].replace("\\040", " "))
    return points


def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


if os.getuid() == 0:
    writable = [p for p in os.environ.pop("SANDBOX_WRITABLE", "").split(":") if p]
    # Each writable path its own mount, so that read-only remounts above it leave it be.
    for path in writable:
        mount("--bind", path, path)
    if last("PrivateTmp") == "yes":
        for path in ("/tmp", "/var/tmp"):
            mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", path)
    if last("ProtectHome") == "yes":
        for path in ("/home", "/root", "/run/user"):
            if os.path.isdir(path):
                mount("-t", "tmpfs", "-o", "ro,mode=0755,nosuid,nodev", "tmpfs", path)
    if last("PrivateDevices") == "yes":
        keep = ("null", "zero", "full", "random", "urandom", "tty")
        # The host's nodes, moved aside first: /dev is covered next.
        aside = f"/run/sandbox-dev-{os.getpid()}"
        os.mkdir(aside)
        mount("-t", "tmpfs", "-o", "mode=0700", "tmpfs", aside)
        for name in keep:
            open(f"{aside}/{name}", "w").close()
            mount("--bind", f"/dev/{name}", f"{aside}/{name}")
        mount("-t", "tmpfs", "-o", "mode=0755,nosuid", "tmpfs", "/dev")
        for name in keep:
            open(f"/dev/{name}", "w").close()
            mount("--move", f"{aside}/{name}", f"/dev/{name}")
        subprocess.run(["umount", aside], check=True)
        os.rmdir(aside)
        os.mkdir("/dev/shm", 0o1777)
        mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", "/dev/shm")
        for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"/dev/{link}")
    if last("ProtectProc") == "invisible" or last("ProcSubset") == "pid":
        options = []
        if last("ProtectProc") == "invisible":
            options.append("hidepid=invisible")
        if last("ProcSubset") == "pid":
            options.append("subset=pid")
        mount("-t", "proc", "-o", ",".join(options + ["nosuid", "nodev", "noexec"]), "proc", "/proc")
    if last("ProtectSystem") == "strict":
        api = ("/dev", "/proc", "/sys")
        for point in mount_points():
            if any(under(point, a) for a in api) or point in writable:
                continue
            if any(under(point, w) for w in writable):
                continue
            if point in ("/tmp", "/var/tmp") and last("PrivateTmp") == "yes":
                continue
            subprocess.run(["mount", "-o", "remount,bind,ro", point], check=False, stderr=subprocess.DEVNULL)
    if last("ProtectKernelTunables") == "yes":
        for point in mount_points():
            if under(point, "/sys"):
                subprocess.run(["mount", "-o", "remount,bind,ro", point], check=False, stderr=subprocess.DEVNULL)
        if os.path.isdir("/proc/sys"):
            mount("--bind", "/proc/sys", "/proc/sys")
            mount("-o", "remount,bind,ro", "/proc/sys")

if last("UMask"):
    os.umask(int(last("UMask"), 8))

if (settings.get("CapabilityBoundingSet") or ["x"])[-1] == "":
    for cap in range(CAP_LAST + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            raise SystemExit(f"sandbox-exec: could not drop capability {cap}")
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
if last("NoNewPrivileges") == "yes":
    prctl(PR_SET_NO_NEW_PRIVS, 1)
if last("MemoryDenyWriteExecute") == "yes":
    prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)

f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, errno_name)))
NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
SUID_BITS = 0o6000
conditional = {"socket"} if families else set()
if last("RestrictNamespaces") == "yes":
    allowed -= {"unshare", "setns"}
    conditional |= {"clone", "clone3"}
    if "clone" in allowed:
        f.add_rule(seccomp.ALLOW, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, NS_FLAGS, 0))
    # clone3's flags are in memory a filter cannot read: systemd answers ENOSYS.
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
if last("LockPersonality") == "yes" and "personality" in allowed:
    conditional.add("personality")
    for persona in (0, 0xFFFFFFFF):
        f.add_rule(seccomp.ALLOW, "personality", seccomp.Arg(0, seccomp.EQ, persona))
if last("RestrictSUIDSGID") == "yes":
    for name, arg in (("chmod", 1), ("fchmod", 1), ("fchmodat", 2)):
        if name in allowed:
            conditional.add(name)
            f.add_rule(seccomp.ALLOW, name, seccomp.Arg(arg, seccomp.MASKED_EQ, SUID_BITS, 0))
skipped = []
for name in sorted(allowed):
    if name in conditional:
        continue
    try:
        f.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError, OSError):
        skipped.append(name)  # not a syscall on this architecture: systemd skips it too
if families:
    for fam in families:
        f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, getattr(socket, fam)))
f.load()
os.execvp(command[0], command)
