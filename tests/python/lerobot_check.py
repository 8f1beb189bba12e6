"""The check with lerobot itself: lerobot's own loader reads a dataset handful wrote, and every
value it returns is the one pyarrow and pandas read from the files.

Opt-in (lerobot pulls torch: about 6 minutes and 5-8 GB), in a venv of its own, outside the
repository (from the repository's root):

    python3 -m venv ../lerobot-venv && ../lerobot-venv/bin/pip install lerobot==0.4.4
    HF_HUB_OFFLINE=1 ../lerobot-venv/bin/python tests/python/lerobot_check.py DATASET

`LeRobotDataset("local/<name>", root=DATASET)` offline, then: every frame, each feature against
the data files' row (NaN equal to NaN) and its task string against meta/tasks.parquet; one
torch DataLoader batch; a selection of episodes; `delta_timestamps` (past and future frames,
clamped to the episode and padded as lerobot documents) at every episode's first and last
frames. Prints what it checked; exits non-zero with the failed assertion on a mismatch.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

import lerobot  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

root = Path(sys.argv[1]).resolve()
info = json.loads((root / "meta/info.json").read_text())
fps = info["fps"]
features = info["features"]
repo_id = f"local/{root.name}"
print(f"lerobot {lerobot.__version__}, torch {torch.__version__}; HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}")
print(f"dataset {root}: {info['total_episodes']} episodes, {info['total_frames']} frames, {fps} fps")

# The reference: the files as pyarrow and pandas read them.
tables = [pq.read_table(p) for p in sorted((root / "data").glob("chunk-*/file-*.parquet"))]
data = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
tasks = pd.read_parquet(root / "meta/tasks.parquet")
task_of = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"])}
episodes = pd.concat([pd.read_parquet(p) for p in sorted((root / "meta/episodes").glob("*/*.parquet"))])
episodes = episodes.sort_values("episode_index").reset_index(drop=True)
assert len(data) == info["total_frames"]


def want(row, key):
    return np.asarray(row[key]).astype(np.float64).reshape(-1)


def got(item, key):
    value = item[key]
    assert isinstance(value, torch.Tensor), f"{key} is {type(value)}"
    return value.numpy().astype(np.float64).reshape(-1)


def same(a, b):
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def check_item(item, row, where):
    for key in features:
        g, w = got(item, key), want(row, key)
        assert same(g, w), f"{where}: {key} lerobot {g} vs files {w}"
    assert item["task"] == task_of[int(row["task_index"])], f"{where}: task {item['task']!r}"


ds = LeRobotDataset(repo_id, root=root)
for t in tables:
    for name, ft in features.items():
        if ft["shape"] == [1]:
            kind = str(t.schema.field(name).type)
            assert not kind.startswith(("list", "fixed_size_list")), f"{name} is {kind}, not a plain column"
assert len(ds) == len(data), f"lerobot has {len(ds)} frames, the files {len(data)}"
assert ds.num_episodes == info["total_episodes"] and ds.fps == fps
print(f"loaded: {ds.num_episodes} episodes, {len(ds)} frames, features {list(ds.features)}")
first = ds[0]
print("frame 0 shapes: " + ", ".join(f"{k} {tuple(first[k].shape)} {first[k].dtype}" for k in features))
for i in range(len(ds)):
    check_item(ds[i], data.iloc[i], f"frame {i}")
print(f"ok: every frame ({len(ds)}), every feature ({len(features)}) and task equal to pyarrow/pandas")

batch_size = min(32, len(ds))
loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
batch = next(iter(loader))
for key, ft in features.items():
    shape = (batch_size,) if ft["shape"] == [1] else (batch_size, *ft["shape"])
    assert tuple(batch[key].shape) == shape, f"batch {key} shape {tuple(batch[key].shape)}, expected {shape}"
    w = np.stack([want(data.iloc[i], key) for i in range(batch_size)]).reshape(shape)
    assert same(batch[key].numpy().astype(np.float64), w), f"batch {key} differs"
print(f"ok: DataLoader batch of {batch_size}: " + ", ".join(f"{k} {tuple(batch[k].shape)}" for k in ("observation.state", "action")))

selected = [int(e) for e in episodes["episode_index"]][1::2] or [0]
sub = LeRobotDataset(repo_id, root=root, episodes=selected)
rows = data[data["episode_index"].isin(selected)]
assert len(sub) == len(rows), f"episodes {selected}: lerobot {len(sub)} frames, files {len(rows)}"
for i in range(len(sub)):
    item = sub[i]
    index = int(item["index"])
    assert int(item["episode_index"]) in selected, f"selection {selected} returned episode {int(item['episode_index'])}"
    check_item(item, data.iloc[index], f"selected frame {i} (index {index})")
print(f"ok: episodes {selected}: {len(sub)} frames, each equal to its row")

offsets = {"observation.state": [-2, -1, 0, 1], "action": [0, 1, 2], "next.reward": [-1, 0]}
delta_timestamps = {k: [o / fps for o in v] for k, v in offsets.items()}
dt = LeRobotDataset(repo_id, root=root, delta_timestamps=delta_timestamps)
checked = 0
for _, ep in episodes.iterrows():
    start, end = int(ep["dataset_from_index"]), int(ep["dataset_to_index"])
    for i in sorted({start, start + 1, (start + end) // 2, end - 2, end - 1} & set(range(start, end))):
        item = dt[i]
        for key, offs in offsets.items():
            stacked = item[key].numpy().astype(np.float64).reshape(len(offs), -1)
            pad = item[f"{key}_is_pad"].numpy()
            for k, o in enumerate(offs):
                j = min(max(i + o, start), end - 1)
                assert same(stacked[k], want(data.iloc[j], key)), f"index {i} {key}[{o:+d}] vs row {j}"
                assert bool(pad[k]) == (not start <= i + o < end), f"index {i} {key}_is_pad[{o:+d}]"
        checked += 1
print(f"ok: delta_timestamps {delta_timestamps} at {checked} frames (episode starts, middles, ends): "
      "values, clamping and padding")
print(f"ok: lerobot {lerobot.__version__} loads {root.name}: every value as the files hold it")
