#!/usr/bin/env python3
"""Write an ONNX ensemble that follows the handful model contract (models/README.md).

The graph is built with onnx.helper from NumPy weights, either random (seeded) or
loaded from an .npz, so a model can be made without PyTorch: for test fixtures, for
benchmarks, and as the executable reference of the contract.

Graph (E members, N dynamic rows, D = S + A inputs, hidden sizes H1..Hk):
    x    = Concat(state [E,N,S], action [E,N,A]) -> [E,N,D]
           (with --angle-state-indices I: Concat(Sin(state[..., I]), Cos(state[..., I]),
           state[..., J], action), J the other channels, D = S + |I| + A)
    x    = (x - input_mean) / input_std               (per feature, [D])
    h    = act(MatMul(h, W_i [E,Hin,Hout]) + b_i [E,1,Hout])   for each hidden layer
    out  = MatMul(h, W_out [E,H,2S]) + b_out [E,1,2S]
    mean = out[..., :S];  lv = out[..., S:]
    lv   = max_logvar - Softplus(max_logvar - lv)
    lv   = min_logvar + Softplus(lv - min_logvar)   -> logvar

Weights in an .npz: input_mean [D], input_std [D], W0.. / b0.. (one pair per layer,
the last is the output layer), max_logvar [S], min_logvar [S].

--defect writes a deliberately broken model for the loader's refusal tests.
"""

import argparse
import hashlib
import json
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
DEFECTS = [
    "none",
    "input-name",  # state input called `obs`
    "output-name",  # logvar output called `log_variance`
    "rank",  # state input is [E*N, S] (rank 2)
    "dtype",  # inputs and outputs are float64
    "state-dim",  # state_dim metadata disagrees with the graph
    "ensemble-size",  # ensemble_size metadata disagrees with the graph
    "no-contract",  # handful.contract metadata missing
    "fixed-n",  # N is a fixed dimension instead of a dynamic one
    "nan-weights",  # output-layer bias is NaN: every prediction is NaN (refused by the probe)
    # The refusals of models/README.md's "Checked at load" that ONNX Runtime alone would
    # give a raw message for, or would not notice:
    "float64",  # the whole model in float64 (a PyTorch `model.double()` export)
    "external-data",  # W0's data in an external file
    "ir-version",  # IR version 14: past ONNX Runtime 1.31's 13
    "opset",  # ai.onnx opset 27: past ONNX Runtime 1.31's 26
    "no-standardisation",  # no input_mean/input_std: raw inputs straight into the network
    "unclamped",  # the log-variance head without the soft clamp
    "elites",  # elites = 0,7 with 2 members
    "elites-duplicate",  # elites = 1,1
    "created-unix",  # created_unix in milliseconds
    "training-data-sha256",  # training_data_sha256 = <hex>
    "angle-count",  # angle_state_indices = 0 on the plain graph: input_mean is [S + A]
    "angle-raw",  # angle_state_indices = 0, the graph's D right, but the raw angle fed twice
    "rows-mixed",  # the mean output adds the batch's mean over N: rows are not independent
    "traced-n",  # a Reshape fixes N = 7 inside the graph (a traced export): ONNX Runtime infers N = 7
    "nan-far",  # finite on the probe, NaN once |state| > 3162: predict reports it at run time
]


def random_weights(rng, e, s, a, hidden, angles=()):
    d = s + len(angles) + a
    sizes = [d, *hidden, 2 * s]
    w = {
        "input_mean": rng.normal(0.0, 0.5, size=d).astype(np.float32),
        "input_std": rng.uniform(0.5, 2.0, size=d).astype(np.float32),
        "max_logvar": np.full(s, 0.5, dtype=np.float32),
        "min_logvar": np.full(s, -10.0, dtype=np.float32),
    }
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w[f"W{i}"] = (rng.normal(size=(e, fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        w[f"b{i}"] = rng.normal(0.0, 0.1, size=(e, 1, fan_out)).astype(np.float32)
    return w


def layer_count(w):
    n = 0
    while f"W{n}" in w:
        n += 1
    return n


def activation(nodes, name, x, kind):
    if kind == "swish":
        nodes.append(helper.make_node("Sigmoid", [x], [f"{name}_sig"]))
        nodes.append(helper.make_node("Mul", [x, f"{name}_sig"], [name]))
    elif kind == "relu":
        nodes.append(helper.make_node("Relu", [x], [name]))
    elif kind == "tanh":
        nodes.append(helper.make_node("Tanh", [x], [name]))
    else:
        raise ValueError(f"unknown activation {kind}")
    return name


def build(w, e, s, a, act, meta, defect, angles=()):
    dtype = np.float64 if defect == "float64" else np.float32
    # The dtype defect feeds float64 inputs (cast inside): ONNX Runtime lacks float64
    # kernels for some ops, so the rest of the graph stays float32.
    in_elem = TensorProto.DOUBLE if defect in ("dtype", "float64") else TensorProto.FLOAT
    elem = TensorProto.DOUBLE if defect == "float64" else TensorProto.FLOAT
    inits = []

    def init(name, value, dt=None):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dt or dtype), name))
        return name

    state_name = "obs" if defect == "input-name" else "state"
    logvar_name = "log_variance" if defect == "output-name" else "logvar"
    n_dim = 7 if defect == "fixed-n" else "N"
    nodes = []
    if defect == "rank":
        state_in = helper.make_tensor_value_info(state_name, in_elem, [n_dim, s])
        nodes.append(helper.make_node("Reshape", [state_name, init("rank_shape", [e, -1, s], np.int64)], ["state3"]))
        state_src = "state3"
    elif defect == "traced-n":
        state_in = helper.make_tensor_value_info(state_name, in_elem, [e, n_dim, s])
        nodes.append(helper.make_node("Reshape", [state_name, init("traced_shape", [e, 7, s], np.int64)], ["state7"]))
        state_src = "state7"
    else:
        state_in = helper.make_tensor_value_info(state_name, in_elem, [e, n_dim, s])
        state_src = state_name
    action_in = helper.make_tensor_value_info("action", in_elem, [e, n_dim, a])
    action_src = "action"
    if defect == "dtype":
        nodes.append(helper.make_node("Cast", [state_src], ["state_f"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Cast", ["action"], ["action_f"], to=TensorProto.FLOAT))
        state_src, action_src = "state_f", "action_f"

    if angles:
        # As src/train/export.rs writes it: sin and cos of the angle channels, the others.
        rest = [j for j in range(s) if j not in angles]
        nodes.append(helper.make_node("Gather", [state_src, init("angle_indices", list(angles), np.int64)], ["angles"], axis=2))
        if defect == "angle-raw":
            parts = ["angles", "angles"]
        else:
            nodes.append(helper.make_node("Sin", ["angles"], ["angles_sin"]))
            nodes.append(helper.make_node("Cos", ["angles"], ["angles_cos"]))
            parts = ["angles_sin", "angles_cos"]
        if rest:
            nodes.append(helper.make_node("Gather", [state_src, init("other_state_indices", rest, np.int64)], ["other_states"], axis=2))
            parts.append("other_states")
        nodes.append(helper.make_node("Concat", [*parts, action_src], ["x"], axis=2))
    else:
        nodes.append(helper.make_node("Concat", [state_src, action_src], ["x"], axis=2))
    if defect == "no-standardisation":
        h = "x"
    else:
        nodes.append(helper.make_node("Sub", ["x", init("input_mean", w["input_mean"])], ["x_centered"]))
        nodes.append(helper.make_node("Div", ["x_centered", init("input_std", w["input_std"])], ["h_in"]))
        h = "h_in"
    layers = layer_count(w)
    for i in range(layers):
        bias = w[f"b{i}"]
        if defect == "nan-weights" and i == layers - 1:
            bias = np.full_like(bias, np.nan)
        nodes.append(helper.make_node("MatMul", [h, init(f"W{i}", w[f"W{i}"])], [f"mm{i}"]))
        nodes.append(helper.make_node("Add", [f"mm{i}", init(f"b{i}", bias)], [f"z{i}"]))
        h = f"z{i}" if i == layers - 1 else activation(nodes, f"h{i}", f"z{i}", act)

    mean_name = "mean_net" if defect in ("rows-mixed", "nan-far") else "mean"
    for name, lo, hi in [(mean_name, 0, s), ("lv_raw", s, 2 * s)]:
        bounds = [init(f"{name}_{k}", [v], np.int64) for k, v in [("lo", lo), ("hi", hi), ("axis", 2)]]
        nodes.append(helper.make_node("Slice", [h, *bounds], [name]))
    if defect == "rows-mixed":
        nodes.append(helper.make_node("ReduceMean", [mean_name], ["batch_mean"], axes=[1], keepdims=1))
        nodes.append(helper.make_node("Add", [mean_name, "batch_mean"], ["mean"]))
    if defect == "nan-far":
        # mean + 0·sqrt(1e7 − state²): unchanged where |state| < 3162, NaN beyond.
        nodes += [
            helper.make_node("Mul", [state_src, state_src], ["state_sq"]),
            helper.make_node("Sub", [init("far", [1e7]), "state_sq"], ["room"]),
            helper.make_node("Sqrt", ["room"], ["room_sqrt"]),
            helper.make_node("Mul", ["room_sqrt", init("zero", [0.0])], ["nan_far"]),
            helper.make_node("Add", [mean_name, "nan_far"], ["mean"]),
        ]
    init("max_logvar", w["max_logvar"])
    init("min_logvar", w["min_logvar"])
    if defect == "unclamped":
        nodes.append(helper.make_node("Identity", ["lv_raw"], [logvar_name]))
    else:
        nodes += [
            helper.make_node("Sub", ["max_logvar", "lv_raw"], ["lv_gap_hi"]),
            helper.make_node("Softplus", ["lv_gap_hi"], ["lv_sp_hi"]),
            helper.make_node("Sub", ["max_logvar", "lv_sp_hi"], ["lv_hi"]),
            helper.make_node("Sub", ["lv_hi", "min_logvar"], ["lv_gap_lo"]),
            helper.make_node("Softplus", ["lv_gap_lo"], ["lv_sp_lo"]),
            helper.make_node("Add", ["min_logvar", "lv_sp_lo"], [logvar_name]),
        ]
    outputs = [
        helper.make_tensor_value_info("mean", elem, [e, n_dim, s]),
        helper.make_tensor_value_info(logvar_name, elem, [e, n_dim, s]),
    ]
    graph = helper.make_graph(nodes, "handful_ensemble", [state_in, action_in], outputs, inits)
    opset = 27 if defect == "opset" else OPSET
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="handful-make-ensemble")
    model.ir_version = 14 if defect == "ir-version" else 8
    if defect == "external-data":
        # Marked as stored in `weights.bin` beside the file (which is never written).
        w0 = next(t for t in model.graph.initializer if t.name == "W0")
        w0.ClearField("raw_data")
        w0.data_location = TensorProto.EXTERNAL
        for key, value in [("location", "weights.bin"), ("offset", "0"), ("length", str(w["W0"].nbytes))]:
            entry = w0.external_data.add()
            entry.key, entry.value = key, value
    bad_meta = {
        "elites": ("elites", "0,7"),
        "elites-duplicate": ("elites", "1,1"),
        "created-unix": ("created_unix", "1700000000000"),
        "training-data-sha256": ("training_data_sha256", "<hex>"),
        "angle-count": ("angle_state_indices", "0"),
    }
    if defect in bad_meta:
        key, value = bad_meta[defect]
        meta[key] = value
    if defect == "state-dim":
        meta["state_dim"] = str(s + 1)
    if defect == "ensemble-size":
        meta["ensemble_size"] = str(e + 1)
    if defect == "no-contract":
        del meta["handful.contract"]
    helper.set_model_props(model, meta)
    if defect not in ("external-data", "ir-version", "opset"):
        onnx.checker.check_model(model, full_check=defect not in ("rank", "traced-n"))
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--ensemble-size", type=int, default=5)
    p.add_argument("--state-names", required=True, help="comma-separated, e.g. x,x_dot,theta,theta_dot")
    p.add_argument("--action-names", required=True, help="comma-separated, e.g. force")
    p.add_argument("--hidden", default="200,200,200", help="comma-separated hidden sizes; empty for linear")
    p.add_argument("--activation", default="swish", choices=["swish", "relu", "tanh"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help=".npz of weights (see module doc); random when absent")
    p.add_argument("--save-weights", help="also write the weights used as .npz")
    p.add_argument("--save-weights-json", help="also write the weights used as JSON (for Rust tests)")
    p.add_argument("--control-period-us", type=int, required=True)
    p.add_argument("--producer", default="handful models/make_ensemble.py")
    p.add_argument("--created-unix", type=int, help="default: now (fixtures pin it for byte-stable output)")
    p.add_argument("--training-data-sha256", default="none")
    p.add_argument("--angle-state-indices", default="", help="comma-separated angle channels fed as sin/cos (the angle form)")
    p.add_argument("--defect", default="none", choices=DEFECTS)
    args = p.parse_args(argv)

    states = [n for n in args.state_names.split(",") if n]
    actions = [n for n in args.action_names.split(",") if n]
    s, a, e = len(states), len(actions), args.ensemble_size
    hidden = [int(h) for h in args.hidden.split(",") if h]
    angles = [int(i) for i in args.angle_state_indices.split(",") if i]
    if args.defect == "angle-raw" and not angles:
        p.error("--defect angle-raw needs --angle-state-indices")
    if e < 1 or s < 1 or a < 1:
        p.error("ensemble size, state names and action names must be non-empty")
    if args.weights:
        w = {k: np.asarray(v, dtype=np.float32) for k, v in np.load(args.weights).items()}
    else:
        w = random_weights(np.random.default_rng(args.seed), e, s, a, hidden, angles)

    meta = {
        "handful.contract": "1",
        "state_names": ",".join(states),
        "action_names": ",".join(actions),
        "state_dim": str(s),
        "action_dim": str(a),
        "ensemble_size": str(e),
        "control_period_us": str(args.control_period_us),
        "producer": args.producer,
        "created_unix": str(args.created_unix if args.created_unix is not None else int(time.time())),
        "training_data_sha256": args.training_data_sha256,
    }
    if angles:
        meta["angle_state_indices"] = ",".join(map(str, angles))
    model = build(w, e, s, a, args.activation, meta, args.defect, angles)
    data = model.SerializeToString()
    with open(args.out, "wb") as f:
        f.write(data)
    if args.save_weights:
        np.savez(args.save_weights, **w)
    if args.save_weights_json:
        with open(args.save_weights_json, "w") as f:
            json.dump({k: v.tolist() for k, v in sorted(w.items())}, f, indent=1)
            f.write("\n")
    print(f"wrote {args.out}: E={e} S={s} A={a} hidden={hidden} {len(data)} bytes sha256={hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
