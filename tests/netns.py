"""Several hosts on this machine: network namespaces on a private bridge, each host with its own disk view.

`Network` makes a switch namespace holding a bridge, and hosts: a network namespace each, with one
address on that bridge (a veth pair made inside the namespaces, so nothing appears in this machine's
own namespace and no traffic leaves the ones made here). A host's processes also get their own
mount and UTS namespaces: every other host's folder is hidden under an empty tmpfs (no shared
disk), and the host name is the host's (worker names tell hosts apart). `Host.call` runs a
function in a thread that entered the host's network namespace: the test's own requests come
from that host. `Host.kill` SIGKILLs every process in it: the machine is gone. Everything made is
removed on exit, as are namespaces left by a test process that was killed. Needs root and `ip`.
No pytest here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/var/run/netns")
_OURS = re.compile(r"^gi(\d+)x")  # gi<creator pid>x<name>


def unavailable() -> str | None:
    """Why hosts cannot be made here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    probe = f"gi{os.getpid()}xprobe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _pids(netns: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, check=False)
    return [int(pid) for pid in result.stdout.split()]


def _remove_namespace(netns: str) -> None:
    for _ in range(20):  # processes may fork while being killed
        pids = _pids(netns)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)], timeout=5)
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


def remove_leftovers() -> None:
    """Namespaces of test processes that died before they could clean up."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        match = _OURS.match(entry.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            _remove_namespace(entry.name)


def _enter(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    with open(NETNS_DIR / netns) as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")


@dataclass
class Host:
    name: str
    netns: str
    address: str
    root: Path  # this host's disk: what its processes see of the test's folders
    hidden: list[Path] = field(default_factory=list)  # the other hosts' folders
    _executor: ThreadPoolExecutor | None = None

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(*args, **kwargs)` in a thread inside this host's network namespace (its sockets are here)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"host-{self.name}", initializer=_enter,
                                                initargs=(self.netns,))
        return self._executor.submit(function, *args, **kwargs).result()

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as a process of this host: its network, its host name, the other hosts' folders hidden."""
        hide = " && ".join(f"mount -t tmpfs -o size=1m,mode=000 none {shlex.quote(str(path))}"
                           for path in self.hidden if path.exists())
        script = " && ".join(filter(None, [f"hostname {shlex.quote(self.name)}", hide, 'exec "$@"']))
        return ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", script, "sh", *argv]

    def popen(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None,
              user: str | None = None) -> subprocess.Popen:
        # setpriv execs (runuser would fork and stand between us and the process we signal).
        switch = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"] if user else []
        command = self.command([*switch, *argv])
        with open(log_path, "ab") as log:
            return subprocess.Popen(command, env=dict(env), cwd=cwd or self.root, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> int:
        """SIGKILL every process of this host, as a power cut would; returns how many there were."""
        pids = _pids(self.netns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


class Network:
    """A /24 on a bridge in its own namespace; `add` hosts, then `seal` once all are added (disk views)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = f"gi{os.getpid()}x{secrets.token_hex(2)}"
        self.subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
        self.switch = f"{self.tag}sw"
        self.hosts: dict[str, Host] = {}

    def __enter__(self) -> Network:
        remove_leftovers()
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def add(self, name: str) -> Host:
        index = len(self.hosts) + 1
        netns = f"{self.tag}{name}"
        _ip("netns", "add", netns)
        # Both ends made inside namespaces: nothing appears in this machine's own namespace.
        _ip("-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{index}", "netns", self.switch)
        _ip("-n", self.switch, "link", "set", f"p{index}", "master", "br0")
        _ip("-n", self.switch, "link", "set", f"p{index}", "up")
        address = f"{self.subnet}.{index}"
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        root = self.root / name
        root.mkdir(parents=True, exist_ok=True)
        self.hosts[name] = Host(name, netns, address, root)
        return self.hosts[name]

    def seal(self) -> None:
        """Each host's processes see no other host's folder."""
        for host in self.hosts.values():
            host.hidden = [other.root for other in self.hosts.values() if other is not host]

    def __exit__(self, *_exc: object) -> None:
        for host in self.hosts.values():
            host.close()
            _remove_namespace(host.netns)
        _remove_namespace(self.switch)
