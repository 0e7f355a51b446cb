//! Compiles every `.proto` under the repository's `proto/` with protox (a pure-Rust protobuf compiler, so a fresh
//! machine needs no system `protoc`) into tonic/prost code, and writes the encoded
//! `FileDescriptorSet` (imports included) that reflection and the gateway read at run time.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The contracts live at the top of the repository, where buf and other languages find them.
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut files = Vec::new();
    collect_protos(&root.join("agora"), &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([&root])?;
    // Imports make the set self-contained for reflection; source info carries the comments.
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // The encoded set keeps custom options (the access rule, the HTTP rules), which
    // prost-types' option structs would drop; reflection and the gateway read this one.
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out.join("agora_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // Type names (`prost::Name`) let the event bus put any event in a `google.protobuf.Any`
    // with its full name, without a hand-kept list of type URLs.
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), config)?;
    Ok(())
}

/// Every `.proto` below `dir`, so a new contract file needs no change here.
fn collect_protos(dir: &PathBuf, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
