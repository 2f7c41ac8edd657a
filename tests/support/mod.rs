//! What the binary's integration tests share: a free loopback port, and the `orchestra`
//! binary started with some arguments (its output discarded); [`secure`]: what the tests of a
//! secure cluster share; [`sidecar`]: what the sidecar tests share.

#[cfg(feature = "server")]
pub mod secure;
#[cfg(feature = "server")]
pub mod sidecar;

use std::process::{Child, Command, Output, Stdio};

/// A loopback port nothing listens on right now.
#[allow(dead_code)] // Not every test file needs a port of its own.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start a server with `spawn(port)` on a free loopback port, and return it once a socket it
/// owns listens there.
///
/// A port found free may be taken by another test's process before the child binds it; the
/// child then exits, and a client would otherwise reach the other process (and fail later,
/// when that one stops). So each try checks that the listener is the child's, and a child
/// that exited is started again on another port.
#[allow(dead_code)] // Not every test file starts a server this way.
pub fn spawn_on_free_port(mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    const TRIES: usize = 5;
    for _ in 0..TRIES {
        let port = free_port();
        let mut child = spawn(port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // Lost the port (or failed otherwise): try another one.
            }
            if listens_on(child.id(), port) {
                return (child, port);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server started on port {port} did not listen there in 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    panic!("the server exited before listening, {TRIES} times, each on another free port");
}

/// Whether process `pid` has a TCP socket listening on loopback or any address at `port`:
/// the inodes of the listening sockets in `/proc/net/tcp{,6}` against the process's open
/// files.
fn listens_on(pid: u32, port: u16) -> bool {
    let port_hex = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1, st field 3 ("0A" = LISTEN), inode field 9.
            if fields.len() > 9 && fields[1].ends_with(&port_hex) && fields[3] == "0A" {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    let Ok(files) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    files.flatten().any(|file| {
        std::fs::read_link(file.path()).is_ok_and(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
    })
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

/// Send SIGTERM to a started `orchestra` and check that it exits 0 (`what` names it in the
/// failure message).
#[allow(dead_code)] // Not every test file stops a child this way.
pub fn stop_with_sigterm(mut child: Child, what: &str) {
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success(), "kill -TERM {pid} failed");
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "{what} should exit 0 on SIGTERM, got {exit}"
    );
}

/// A `RemoteClient` to the API at `url`, once the server there answers (30 s at most).
#[cfg(feature = "server")]
#[allow(dead_code)] // Not every test file talks to an API server.
pub async fn connect_api(url: &str) -> orchestra::api::RemoteClient {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(client) = orchestra::api::RemoteClient::connect(url).await {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no API server came up at {url} in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A `RemoteClient` over TLS with the credentials file at `path`, once the server has
/// written it and answers (30 s at most).
#[cfg(feature = "server")]
#[allow(dead_code)] // Not every test file talks to a secure API server.
pub async fn connect_secure(path: &std::path::Path) -> orchestra::api::RemoteClient {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(credentials) = orchestra_api::tls::Credentials::load(path)
            && let Ok(client) = orchestra::api::RemoteClient::connect_with(&credentials).await
            && orchestra::api::Client::list::<orchestra::api::resources::Namespace>(
                &client,
                None,
                &Default::default(),
            )
            .await
            .is_ok()
        {
            return client;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no secure API server answered with {} in 30 s",
            path.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Run `orchestra ctl ARGS...` against the API at `url` and return what it printed.
#[allow(dead_code)] // Not every test file runs ctl.
pub fn ctl(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orchestra"))
        .arg("ctl")
        .args(args)
        .env("ORCHESTRA_SERVER", url)
        .output()
        .unwrap()
}

/// The standard output of a `ctl` run that must have succeeded (its stderr in the failure).
#[allow(dead_code)] // Not every test file runs ctl.
pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "ctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A plain HTTP/1.1 GET of `path` on `127.0.0.1:PORT` (the API server speaks HTTP/JSON on the
/// gRPC port), the whole response as text.
#[allow(dead_code)] // Not every test file speaks HTTP.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
