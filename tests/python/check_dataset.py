"""Checks a handful dataset against the LeRobot v3.0 layout with pyarrow and pandas.

Usage: check_dataset.py DATASET_ROOT. Exits non-zero with the failed assertion on any mismatch:
info.json keys and features, data schema (names, dtypes, shapes; every shape-[1] feature a plain
column, as lerobot's loader casts it), contiguous indices, episode
offsets against the data rows, tasks table as lerobot loads it, stats against the data.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

root = Path(sys.argv[1])
info = json.loads((root / "meta/info.json").read_text())

INFO_KEYS = {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
             "chunks_size", "data_files_size_in_mb", "fps", "splits", "data_path", "video_path",
             "features", "handful"}
assert INFO_KEYS <= set(info), f"info.json lacks {INFO_KEYS - set(info)}"
assert info["codebase_version"] == "v3.0"
assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
assert info["video_path"] is None
assert info["splits"] == {"train": f"0:{info['total_episodes']}"}
for key in ("calibration_sha256", "calibration_text", "config", "model_sha256", "software_version", "robot_id"):
    assert key in info["handful"], f"info.json handful lacks {key}"

FEATURES = {"observation.state": "float32", "action": "float32", "next.reward": "float32",
            "next.done": "bool", "observation.host_time_us": "int64",
            "observation.firmware_time_us": "int64", "is_expert": "bool",
            "action.command_seq": "int64", "observation.applied_command_seq": "int64",
            "timestamp": "float32",
            "frame_index": "int64", "episode_index": "int64", "index": "int64", "task_index": "int64",
            "phase": "int64", "reset_score": "float32"}
features = info["features"]
assert set(features) == set(FEATURES), f"features {sorted(features)}"
for name, dtype in FEATURES.items():
    ft = features[name]
    assert ft["dtype"] == dtype, f"{name}: dtype {ft['dtype']}"
    if name in ("observation.state", "action"):
        assert len(ft["names"]) == ft["shape"][0] > 0, f"{name}: {ft}"
    else:
        assert ft["shape"] == [1], f"{name}: {ft}"

ARROW = {"float32": pa.float32(), "bool": pa.bool_(), "int64": pa.int64()}
data_files = sorted((root / "data").glob("chunk-*/file-*.parquet"))
assert data_files, "no data files"
frames = []
for path in data_files:
    table = pq.read_table(path)
    assert set(table.schema.names) == set(FEATURES), f"{path}: columns {table.schema.names}"
    for name, dtype in FEATURES.items():
        t = table.schema.field(name).type
        if name in ("observation.state", "action") and features[name]["shape"] != [1]:
            want = pa.list_(pa.float32(), features[name]["shape"][0])
            assert t.equals(want) or t.value_type == pa.float32() and t.list_size == want.list_size, f"{path}: {name} is {t}"
        else:
            # Every shape-[1] feature a plain column, as lerobot writes and loads it.
            assert t == ARROW[dtype], f"{path}: {name} is {t}, expected {dtype}"
    df = table.to_pandas()
    df["_file"] = str(path.relative_to(root))
    frames.append(df)
data = pd.concat(frames, ignore_index=True)
assert len(data) == info["total_frames"], f"{len(data)} rows, total_frames {info['total_frames']}"
assert (data["index"].to_numpy() == np.arange(len(data))).all(), "index is not 0..N-1"
state = np.stack(data["observation.state"].to_numpy())
assert state.dtype == np.float32 and state.shape == (len(data), features["observation.state"]["shape"][0])

tasks = pd.read_parquet(root / "meta/tasks.parquet")
assert tasks.index.name == "task", f"tasks index is {tasks.index.name!r}"
assert list(tasks["task_index"]) == list(range(len(tasks))) == list(range(info["total_tasks"]))

episodes = pd.concat([pd.read_parquet(p) for p in sorted((root / "meta/episodes").glob("*/*.parquet"))])
for col in ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index",
            "data/chunk_index", "data/file_index", "meta/episodes/chunk_index", "meta/episodes/file_index"):
    assert col in episodes.columns, f"episodes lack {col}"
assert len(episodes) == info["total_episodes"]
for _, ep in episodes.iterrows():
    e = int(ep["episode_index"])
    rows = data[data["episode_index"] == e]
    assert len(rows) == ep["length"] == ep["dataset_to_index"] - ep["dataset_from_index"], f"episode {e}"
    assert rows["index"].min() == ep["dataset_from_index"] and rows["index"].max() == ep["dataset_to_index"] - 1
    assert (rows["frame_index"].to_numpy() == np.arange(len(rows))).all(), f"episode {e} frame_index"
    assert np.allclose(rows["timestamp"], rows["frame_index"] / info["fps"], atol=1e-4), f"episode {e} timestamp"
    want_file = f"data/chunk-{ep['data/chunk_index']:03d}/file-{ep['data/file_index']:03d}.parquet"
    assert set(rows["_file"]) == {want_file}, f"episode {e} in {set(rows['_file'])}, meta says {want_file}"
    for t in ep["tasks"]:
        assert t in tasks.index, f"episode {e} task {t!r} not in tasks.parquet"
    assert set(rows["task_index"]) <= {int(tasks.loc[t, "task_index"]) for t in ep["tasks"]}
    for stat in ("min", "max", "mean", "std", "count"):
        assert f"stats/observation.state/{stat}" in episodes.columns

stats = json.loads((root / "meta/stats.json").read_text())


def s_zero(s):
    return s["count"] == [0] and all(v == [0.0] for k, v in s.items() if k != "count")


assert set(stats) == set(FEATURES), f"stats for {sorted(stats)}"
for name in FEATURES:
    col = data[name].to_numpy()
    vector = name in ("observation.state", "action") and features[name]["shape"] != [1]
    values = np.stack(col).astype(np.float64) if vector else col.astype(np.float64)[:, None]
    if name == "reset_score":
        # NaN where no classifier scored the frame: statistics of the scored frames.
        values = values[np.isfinite(values[:, 0])]
        if len(values) == 0:
            assert s_zero(stats[name]), f"{name}: {stats[name]}"
            continue
    s = stats[name]
    assert s["count"] == [len(values)], f"{name} count {s['count']}"
    assert np.allclose(s["min"], values.min(0)) and np.allclose(s["max"], values.max(0)), name
    assert np.allclose(s["mean"], values.mean(0), rtol=1e-6), f"{name} mean {s['mean']} vs {values.mean(0)}"
    assert np.allclose(s["std"], values.std(0), rtol=1e-5, atol=1e-9), f"{name} std {s['std']} vs {values.std(0)}"
print(f"ok: {info['total_episodes']} episodes, {len(data)} frames, {len(data_files)} data files")
