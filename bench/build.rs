//! Generates the tonic code of the echo baseline (`proto/echo.proto`) and of the subset of etcd's
//! KV API that the etcd target uses (`proto/etcd_kv.proto`), with the vendored `protoc` (no
//! system package needed), as `cluster/proto/build.rs` does.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/echo.proto");
    println!("cargo:rerun-if-changed=proto/etcd_kv.proto");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/echo.proto", "proto/etcd_kv.proto"],
        &["proto"],
    )?;
    Ok(())
}
