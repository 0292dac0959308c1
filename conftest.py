"""Shared pytest fixtures: DDS isolation, node processes, an in-test rclpy node.

Every test session gets its own ROS_DOMAIN_ID and keeps discovery on this machine,
so parallel runs and stray processes never cross-talk. Node executables are started
as real processes from the colcon install space, exactly as `ros2 run` would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
INSTALL = ROOT / "install"


def _pick_domain_id() -> int:
    # 1..100; the pid spreads concurrent sessions, an override pins it.
    return int(os.environ.get("SOARM_TEST_DOMAIN_ID", 1 + os.getpid() % 100))


os.environ["ROS_DOMAIN_ID"] = str(_pick_domain_id())
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def executable_path(package: str, executable: str) -> Path:
    """Where `ros2 run <package> <executable>` finds the executable."""
    return INSTALL / package / "lib" / package / executable


class NodeProcess:
    """A node executable running as a child process, its output in a log file."""

    def __init__(self, package: str, executable: str, args: list[str], log_dir: Path, env=None):
        self.name = f"{package}/{executable}"
        exe = executable_path(package, executable)
        if not exe.exists():
            raise FileNotFoundError(f"{exe} not installed: run scripts/setup.sh (colcon build)")
        self.log_path = log_dir / f"{package}.{executable}.{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(exe), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_node(tmp_path, request):
    """Factory: start_node(package, executable, ros_args=[...], params_file=..., params={...}).

    Processes are stopped at teardown; their logs are printed when the test fails.
    """
    procs: list[NodeProcess] = []

    def _start(package, executable, *, params_file=None, params=None, ros_args=(), args=(), env=None):
        argv = list(args) + ["--ros-args"]
        if params_file:
            argv += ["--params-file", str(params_file)]
        for key, value in (params or {}).items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            argv += ["-p", f"{key}:={value}"]
        argv += list(ros_args)
        p = NodeProcess(package, executable, argv, tmp_path, env=env)
        procs.append(p)
        return p

    yield _start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for p in procs:  # stop every process even if one of them misbehaves
        try:
            code = p.stop()
            if failed:
                print(f"\n----- log of {p.name} (exit {code}) -----\n{p.log()[-6000:]}")
        except Exception as exc:  # noqa: BLE001 - teardown must go on
            print(f"could not stop {p.name} cleanly: {exc!r}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class SpinningNode:
    """An rclpy node spun by a background thread, for talking to nodes under test."""

    def __init__(self, name: str):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._clients = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # shutdown races
            pass

    def wait_for(self, predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
        """Poll predicate() until true; raise AssertionError naming `what` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")

    def client(self, srv_type, name: str, timeout: float = 30.0):
        """A service client, created once per (type, name) and kept, so that its DDS
        endpoints stay matched between calls. The first time, it waits for the service
        and then a short settle time: the server's response writer must also have
        discovered our response reader, which `wait_for_service` does not tell (a
        response sent before that is lost; seen under heavy CPU load)."""
        key = (srv_type, name)
        if key not in self._clients:
            client = self.node.create_client(srv_type, name)
            if not client.wait_for_service(timeout_sec=timeout):
                self.node.destroy_client(client)
                raise AssertionError(f"service {name} not available after {timeout} s")
            time.sleep(0.5)
            self._clients[key] = client
        return self._clients[key]

    def call(self, srv_type, name: str, request, timeout: float = 30.0):
        """Call a service and return its response (waits for the service first)."""
        client = self.client(srv_type, name, timeout)
        future = client.call_async(request)
        self.wait_for(future.done, timeout, what=f"response of {name}")
        return future.result()

    def close(self):
        # executor and its spinning thread stop before the node goes: a callback still
        # running on a destroyed node raises "cannot use Destroyable" at exit
        self.executor.shutdown(timeout_sec=2)
        self._thread.join(timeout=2)
        self.node.destroy_node()
        self._rclpy.shutdown(context=self.context)


@pytest.fixture
def ros_node(request):
    """An rclpy node (own context) spinning in the background for the test's duration."""
    n = SpinningNode("test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:40])
    yield n
    n.close()


#: Retries of a failed multi-process DDS test (pytest-rerunfailures). Timing between real
#: processes on a loaded 2-core CI machine occasionally loses a race the product handles
#: (e.g. a message of the previous scene still in flight); one retry keeps CI meaningful:
#: a test that fails twice fails, and every retry is listed as RERUN in the summary, with the
#: traceback of the failed attempt (pytest_configure). SOARM_DDS_RERUNS=0 turns it off (to hunt
#: flakiness).
DDS_RERUNS = int(os.environ.get("SOARM_DDS_RERUNS", "1"))


def pytest_configure(config):
    # What made a retried test fail, in the log of every run (pytest-rerunfailures' option
    # --rerun-show-tracebacks, set here: in pytest.ini it would break runs with -p no:rerunfailures).
    if config.pluginmanager.hasplugin("rerunfailures"):
        config.option.rerun_show_tracebacks = True


def pytest_collection_modifyitems(config, items):
    if DDS_RERUNS <= 0 or not config.pluginmanager.hasplugin("rerunfailures"):
        return
    for item in items:
        if item.get_closest_marker("dds") is not None and item.get_closest_marker("flaky") is None:
            item.add_marker(pytest.mark.flaky(reruns=DDS_RERUNS, reruns_delay=2))
