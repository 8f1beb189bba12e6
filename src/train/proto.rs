//! The ONNX protobuf types, generated at build time by prost from `models/onnx.proto`
//! (build.rs). Only the trainer's export uses them; nothing here is hand-written.

#![allow(clippy::all, missing_docs, rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
