//! Generates the protobuf and tonic code from `proto/tern.proto`, with the vendored `protoc`
//! (no system package needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/tern.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &["proto/tern.proto"], &["proto"])?;
    Ok(())
}
