//! Generates the gRPC code from `proto/doorward/v1/*.proto` with a vendored protoc, so that a
//! fresh machine needs nothing but the Rust toolchain.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = tonic_prost_build::Config::new();
    // Handing the path to prost-build directly avoids `std::env::set_var`, which is `unsafe`
    // in edition 2024 (the workspace forbids unsafe code).
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("doorward_descriptor.bin"))
        .compile_with_config(config, &["proto/doorward/v1/doorward.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
