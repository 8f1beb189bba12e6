//! Build script: generates the ONNX protobuf types (`onnx.rs` in `OUT_DIR`) from the
//! committed `models/onnx.proto` for the trainer's ONNX export (src/train/export.rs).
//!
//! Parses the schema with protox (pure Rust), so no `protoc` binary is needed. Never
//! touches the network or anything outside the crate and `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=models/onnx.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let descriptors = protox::compile(["onnx.proto"], ["models"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
