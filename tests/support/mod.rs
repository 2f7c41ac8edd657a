//! What the binary's integration tests share: a free loopback port, and the `orchestra`
//! binary started with some arguments (its output discarded).

use std::process::{Child, Command, Stdio};

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `orchestra ARGS...` with stdout and stderr discarded.
pub fn spawn_orchestra<I, S>(args: I) -> Child
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
