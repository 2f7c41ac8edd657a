//! Build script: with the `server` or `remote` feature, compile the API's gRPC proto under
//! `proto/` into Rust (prost messages, tonic client and server stubs). Without them, do
//! nothing, so that a program using only the model and `LocalClient` builds no gRPC code.
//!
//! `protox` is a protobuf compiler written in Rust: the build needs nothing but cargo (no
//! `protoc`), and the `.proto` stays the one source of truth.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(any(feature = "server", feature = "remote"))]
    if std::env::var_os("CARGO_FEATURE_SERVER").is_some()
        || std::env::var_os("CARGO_FEATURE_REMOTE").is_some()
    {
        grpc::generate();
    }
}

#[cfg(any(feature = "server", feature = "remote"))]
mod grpc {
    /// The proto, relative to the include directory `proto/`.
    const PROTO: &str = "orchestra/api/v1/api.proto";

    pub(super) fn generate() {
        println!("cargo::rerun-if-changed=proto/{PROTO}");
        let descriptors = match protox::compile([PROTO], ["proto"]) {
            Ok(descriptors) => descriptors,
            Err(err) => fail(&format!("compiling proto/{PROTO}: {err:?}")),
        };
        let generated = tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .build_transport(true)
            // Objects are JSON bytes: `bytes::Bytes` avoids a copy into a Vec.
            .bytes(".")
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
