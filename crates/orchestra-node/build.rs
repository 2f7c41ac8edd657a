//! Build script: with the `cri` feature, compile the CRI subset under `proto/` into Rust
//! (prost messages and tonic clients). Without it, do nothing, so that the fake and process
//! runtimes build no gRPC code.
//!
//! `protox` is a protobuf compiler written in Rust: the build needs nothing but cargo (no
//! `protoc`).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "cri")]
    if std::env::var_os("CARGO_FEATURE_CRI").is_some() {
        cri::generate();
    }
}

#[cfg(feature = "cri")]
mod cri {
    /// The proto, relative to the include directory `proto/`.
    const PROTO: &str = "runtime/v1/cri.proto";

    pub(super) fn generate() {
        println!("cargo::rerun-if-changed=proto/{PROTO}");
        let descriptors = match protox::compile([PROTO], ["proto"]) {
            Ok(descriptors) => descriptors,
            Err(err) => fail(&format!("compiling proto/{PROTO}: {err:?}")),
        };
        let generated = tonic_prost_build::configure()
            .build_client(true)
            .build_server(false)
            .build_transport(true)
            .emit_rerun_if_changed(false)
            .compile_fds(descriptors);
        if let Err(err) = generated {
            fail(&format!("generating Rust code from proto/{PROTO}: {err}"));
        }
    }

    fn fail(message: &str) -> ! {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
