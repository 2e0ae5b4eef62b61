//! Compiles `proto/` with protox (no `protoc` binary needed) and writes the
//! descriptor set that the server offers through gRPC reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "huying/v1/common.proto",
    "huying/v1/notification.proto",
    "huying/v1/identity.proto",
    "huying/v1/evidence.proto",
    "huying/v1/auth.proto",
    "huying/v1/citizen.proto",
    "huying/v1/case.proto",
    "huying/v1/directory.proto",
    "huying/v1/staff.proto",
    "huying/v1/audit.proto",
    "huying/v1/abuse.proto",
    "huying/v1/personal_data.proto",
    "huying/v1/red_envelope.proto",
    "huying/v1/stats.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");

    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    fs::write(
        out_dir.join("huying_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // Small per-stream buffers: see src/api/codec.rs.
    tonic_prost_build::configure()
        .codec_path("crate::api::codec::LeanCodec")
        .compile_fds(descriptors)?;

    Ok(())
}
