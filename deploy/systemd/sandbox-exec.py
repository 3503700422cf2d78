#!/usr/bin/python3
"""Runs a command under the kernel restrictions a systemd unit asks for, read from the
unit file itself, for deploy/systemd/sandbox-test.sh. This is not systemd (it is not PID 1
here, so units cannot be started): no namespaces, no ProtectSystem, no DynamicUser. It
applies the parts that decide whether Doorward's binaries can run at all:

  SystemCallFilter= / SystemCallErrorNumber=   a seccomp filter with the same allow list
                                               (groups expanded by systemd-analyze itself)
  RestrictAddressFamilies=                     socket() refused for any other family
  MemoryDenyWriteExecute=yes                   the kernel's own rule, prctl(PR_SET_MDWE)
  NoNewPrivileges=yes                          prctl(PR_SET_NO_NEW_PRIVS)
  CapabilityBoundingSet= (empty)               every capability dropped from the bounding set
  (a non-root user)                            setuid/setgid to the given IDs

Usage: sandbox-exec.py UNIT_FILE UID GID COMMAND [ARG...]
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


if (settings.get("CapabilityBoundingSet") or ["x"])[-1] == "":
    for cap in range(CAP_LAST + 1):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            raise SystemExit(f"sandbox-exec: could not drop capability {cap}")
os.setgroups([])
os.setgid(gid)
os.setuid(uid)
if (settings.get("NoNewPrivileges") or ["no"])[-1] == "yes":
    prctl(PR_SET_NO_NEW_PRIVS, 1)
if (settings.get("MemoryDenyWriteExecute") or ["no"])[-1] == "yes":
    prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)

f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, errno_name)))
skipped = []
for name in sorted(allowed):
    if name == "socket" and families:
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
