//! Build script: with the `etcd` feature, compile the etcd v3 protos under `proto/` into Rust
//! (prost messages, tonic client and server stubs). Without it, do nothing.
//!
//! Why generate here instead of checking the generated code in: the `.proto` files stay the
//! single source of truth (no generated file to drift from them or to regenerate by hand), and
//! `protox` is a protobuf compiler written in Rust, so the build needs nothing but cargo — no
//! `protoc`. The price (compiling protox and the code generator) is paid only by builds that
//! turn the `etcd` feature on; the default build does not even compile these build
//! dependencies, since they are optional and enabled by that feature.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // The feature gates both the build dependencies (cfg) and the work (the env check).
    #[cfg(feature = "etcd")]
    if std::env::var_os("CARGO_FEATURE_ETCD").is_some() {
        etcd::generate();
    }
}

#[cfg(feature = "etcd")]
mod etcd {
    /// The protos, relative to the include directory `proto/`.
    const PROTOS: [&str; 2] = ["etcdserverpb/rpc.proto", "mvccpb/kv.proto"];

    pub(super) fn generate() {
        println!("cargo::rerun-if-changed=proto");
        for proto in PROTOS {
            println!("cargo::rerun-if-changed=proto/{proto}");
        }
        let descriptors = match protox::compile(PROTOS, ["proto"]) {
            Ok(descriptors) => descriptors,
            Err(err) => fail(&format!("compiling the etcd protos under proto/: {err:?}")),
        };
        let generated = tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .build_transport(true)
            // Keys and values as `bytes::Bytes`, the store's own types: no copies.
            .bytes(".")
            .emit_rerun_if_changed(false)
            .compile_fds(descriptors);
        if let Err(err) = generated {
            fail(&format!("generating Rust code from the etcd protos: {err}"));
        }
    }

    fn fail(message: &str) -> ! {
        // A build script reports failure by exiting non-zero; the message goes to the build log.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
