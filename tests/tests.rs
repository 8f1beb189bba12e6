// model: ONNX ensembles through ONNX Runtime (needs `bash models/setup.sh`).
mod model;
