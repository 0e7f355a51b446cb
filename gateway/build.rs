//! Compiles the vendored `google.rpc` error model (`proto/google/rpc/`) with protox into an
//! encoded `FileDescriptorSet` in `OUT_DIR`, so the edge can render any upstream's error details
//! as proto3 JSON by their type URL without generated code for each detail type.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    println!("cargo:rerun-if-changed=proto");

    let mut compiler = protox::Compiler::new([&root])?;
    // Imports (google.protobuf.Any, Duration) make the set self-contained: rendering an `Any`
    // needs the Any descriptor itself, and RetryInfo's delay is a Duration.
    compiler.include_imports(true);
    compiler.open_files(["google/rpc/status.proto", "google/rpc/error_details.proto"])?;

    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("google_rpc_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    Ok(())
}
