//! Compiles the protobuf schemas with protox, a pure-Rust protobuf compiler, so building Herald
//! never needs `protoc` installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/herald/v1/events.proto",
        "proto/herald/v1/commands.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
