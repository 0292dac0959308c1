"""Per-episode columns of our own in a LeRobot v3 dataset's episode metadata.

LeRobot 0.6.1 writes one row per episode into `meta/episodes/chunk-*/file-*.parquet`
(`LeRobotDatasetMetadata.save_episode`) and has no public way to add fields to that row:
`LeRobotDataset.save_episode()` takes only the frame buffer, and the row is assembled
inside LeRobot from its own fields. Its reader, on the other hand, keeps every column
that does not start with `stats/` (`io_utils.load_episodes`), so extra columns travel
with the dataset and show up in `LeRobotDataset(...).meta.episodes`.

So the converter writes them itself, once LeRobot has finalized the dataset (in the
staging directory, before the dataset is moved into place, so it is as atomic as the
rest): every episode file gets every column below, in this order, with the default for
episodes we know nothing about (e.g. appended to a dataset made elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

EPISODES_DIR = Path("meta") / "episodes"

#: column -> (pyarrow type name, default)
COLUMNS: dict[str, tuple[str, object]] = {
    # the scene seed of the episode (EpisodeEvent.seed of its STARTED), -1 unknown
    "soarm/seed": ("int64", -1),
    # "success" | "failure" from the recorded events, "" unknown
    "soarm/outcome": ("string", ""),
    # EpisodeEvent STAGE_* bits reached, -1 unknown
    "soarm/stages": ("int64", -1),
    # time of the episode's first frame after its STARTED event (s), 0 without one
    "soarm/start_offset_s": ("float64", 0.0),
    # human take-overs in the episode (the RunPolicy result's; written by evaluate --repo-id), -1 unknown
    "soarm/interventions": ("int64", -1),
    # seconds under human control (the RunPolicy result's human_time; evaluate --repo-id), -1 unknown
    "soarm/human_time_s": ("float64", -1.0),
}


def episode_files(root: str | Path) -> list[Path]:
    return sorted((Path(root) / EPISODES_DIR).glob("*/*.parquet"))


def write_episode_columns(root: str | Path, values: Mapping[int, Mapping[str, object]]) -> None:
    """Add (or update) the COLUMNS in every episode file of the dataset at `root`.

    `values`: dataset episode_index -> {column: value}; other episodes keep the value they
    have, or get the default. Each file is rewritten aside and renamed over the original.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = episode_files(root)
    if not files:
        raise FileNotFoundError(f"no episode metadata under {Path(root) / EPISODES_DIR}")
    for path in files:
        table = pq.read_table(path)
        episodes = table.column("episode_index").to_pylist()
        for name, (typ, default) in COLUMNS.items():
            old = table.column(name).to_pylist() if name in table.schema.names else [default] * len(episodes)
            new = [values.get(int(e), {}).get(name, o) for e, o in zip(episodes, old)]
            new = [default if v is None else v for v in new]
            col = pa.array(new, type=getattr(pa, typ)())
            if name in table.schema.names:
                table = table.set_column(table.schema.get_field_index(name), name, col)
            else:
                table = table.append_column(name, col)
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp, compression="snappy")
        os.replace(tmp, path)


def read_episode_columns(root: str | Path) -> dict[int, dict[str, object]]:
    """episode_index -> {COLUMNS..., "tasks": [...]} for every episode (defaults where absent)."""
    import pyarrow.parquet as pq

    out: dict[int, dict[str, object]] = {}
    for path in episode_files(root):
        names = pq.read_schema(path).names
        wanted = ["episode_index"] + [c for c in ("tasks", *COLUMNS) if c in names]
        table = pq.read_table(path, columns=wanted).to_pydict()
        for i, e in enumerate(table["episode_index"]):
            row = {name: default for name, (_, default) in COLUMNS.items()}
            row["tasks"] = []
            for c in wanted[1:]:
                v = table[c][i]
                if v is not None:
                    row[c] = list(v) if c == "tasks" else v
            out[int(e)] = row
    return out
