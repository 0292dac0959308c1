"""Two "hosts" on one machine for DDS tests and benchmarks: network namespaces joined by a
router namespace that forwards unicast but not multicast. Needs root and iproute2.
(Helper module for tests/test_multi_machine.py and benchmarks/bench_multi_machine.py.)"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check)


class TwoHosts:
    """Hosts `robot` (10.213.<n>.1) and `gpu` (10.213.<n+1>.1) in their own network
    namespaces, joined through a third namespace that routes unicast between the two
    subnets. Like any IP router without a multicast routing daemon it does not forward
    multicast, so DDS's default multicast discovery cannot cross (a network "without
    multicast", e.g. Wi-Fi with multicast filtering)."""

    def __init__(self, tag: int):
        self.ns = {"robot": f"soarm_robot_{tag}", "gpu": f"soarm_gpu_{tag}", "router": f"soarm_rtr_{tag}"}
        net = {"robot": f"10.213.{2 * (tag % 100)}", "gpu": f"10.213.{2 * (tag % 100) + 1}"}
        self.addr = {host: f"{prefix}.1" for host, prefix in net.items()}
        for ns in self.ns.values():
            run("ip", "netns", "add", ns)
        router = self.ns["router"]
        run("ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for i, host in enumerate(("robot", "gpu")):
            ns, here, there = self.ns[host], f"vs{i}h{tag % 100000}", f"vs{i}r{tag % 100000}"
            run("ip", "link", "add", here, "type", "veth", "peer", "name", there)
            run("ip", "link", "set", here, "netns", ns)
            run("ip", "link", "set", there, "netns", router)
            run("ip", "-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", here)
            run("ip", "-n", router, "addr", "add", f"{net[host]}.254/24", "dev", there)
            run("ip", "-n", ns, "link", "set", here, "up")
            run("ip", "-n", router, "link", "set", there, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "route", "add", "default", "via", f"{net[host]}.254")

    def popen(self, host: str, argv: list[str], env: dict, log: Path) -> subprocess.Popen:
        """Run argv on `host`. Each host has its own /dev/shm, shared by that host's processes:
        Fast DDS shared memory must not bridge the "machines" (`ip netns exec` gives each
        process its own mount namespace, so the host's directory is bind-mounted over
        /dev/shm). And its own /etc/machine-id: Fast DDS derives its host id from it and takes
        participants with its own host id for local ones (distinct machines have distinct ids;
        with an interface allowlist the "local" peers then never meet)."""
        shm = log.parent / f"shm_{host}"
        shm.mkdir(exist_ok=True)
        machine_id = log.parent / f"machine-id_{host}"
        if not machine_id.exists():
            machine_id.write_text(hashlib.md5(f"{host} {self.addr[host]}".encode()).hexdigest() + "\n")
        script = f'mount --bind "{shm}" /dev/shm && mount --bind "{machine_id}" /etc/machine-id && exec "$@"'
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns[host], "sh", "-c", script, "sh", *argv],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )

    def close(self):
        for ns in self.ns.values():
            run("ip", "netns", "del", ns, check=False)


class OneLan(TwoHosts):
    """Hosts on one Ethernet segment (a Linux bridge in its own namespace, multicast
    forwarded like an unmanaged switch), each in its own network namespace with the address
    10.214.<tag % 200>.<i + 1> in the order `hosts` names them. `popen` and `close` as in
    TwoHosts (own /dev/shm and /etc/machine-id per host)."""

    def __init__(self, tag: int, hosts: tuple[str, ...]):
        suffix = tag % 100000
        self.ns = self.namespaces(tag, hosts)
        self.addr = {host: f"10.214.{tag % 200}.{i + 1}" for i, host in enumerate(hosts)}
        for ns in self.ns.values():
            run("ip", "netns", "add", ns)
        switch = self.ns["_switch"]
        run("ip", "-n", switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        run("ip", "-n", switch, "link", "set", "br0", "up")
        for i, host in enumerate(hosts):
            ns, here, there = self.ns[host], f"vl{i}h{suffix}", f"vl{i}s{suffix}"
            run("ip", "link", "add", here, "type", "veth", "peer", "name", there)
            run("ip", "link", "set", here, "netns", ns)
            run("ip", "link", "set", there, "netns", switch)
            run("ip", "-n", switch, "link", "set", there, "master", "br0")
            run("ip", "-n", switch, "link", "set", there, "up")
            run("ip", "-n", ns, "addr", "add", f"{self.addr[host]}/24", "dev", here)
            run("ip", "-n", ns, "link", "set", here, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            # A default route: multicast (DDS discovery) leaves through the segment.
            run("ip", "-n", ns, "route", "add", "default", "dev", here)

    @staticmethod
    def namespaces(tag: int, hosts: tuple[str, ...]) -> dict[str, str]:
        """host -> namespace name, and "_switch" -> the bridge's namespace."""
        return {**{host: f"slan_{host[:6]}_{tag}" for host in hosts}, "_switch": f"slan_sw_{tag}"}


def stop(proc: subprocess.Popen):
    if proc.poll() is None:
        os.killpg(proc.pid, 2)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=5)


def dds_env(profile: Path) -> dict:
    env = {
        **os.environ,
        "FASTDDS_DEFAULT_PROFILES_FILE": str(profile),
        # Discovery beyond localhost (the test session's default is LOCALHOST).
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("ROS_STATIC_PEERS", None)
    return env
