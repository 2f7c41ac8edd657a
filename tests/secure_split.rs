//! A secure split deployment: `orchestra server` with TLS, authentication, the Node and RBAC
//! authorizers and the audit log on (the defaults); `orchestra scheduler` and `orchestra
//! controller-manager` on the credentials the server wrote for them (their own identities,
//! allowed by the built-in roles, not admin); and `orchestra agent --token` that obtains its
//! node certificate with the join token on first contact, and serves the cluster DNS as the
//! DNS's own user (`--dns-credentials DATA_DIR/coredns.credentials`). A Deployment applied by
//! the admin runs on the agent's node, and the audit log shows each component acting as
//! itself and never refused. An agent with a wrong token, or a DNS credentials file that does
//! not exist, is refused with a clear error.

#![cfg(feature = "server")]

mod support;

use std::path::Path;
use std::process::Child;

use orchestra_api::Client;
use orchestra_api::resources::Node;
use support::secure::{Audit, ready_pods, spawn_secure_server, wait_for, web_deployment};
use support::{free_port, spawn_orchestra, stop_with_sigterm};

/// Processes killed if the test fails before it stops them.
struct Guard(Vec<(Child, &'static str)>);

impl Drop for Guard {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn agent(url: &str, token: &str, node: &str, state: &Path, home: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_orchestra"));
    command
        .args([
            "agent",
            "--server",
            url,
            "--token",
            token,
            "--node-name",
            node,
            "--runtime",
            "fake",
            "--state-dir",
        ])
        .arg(state)
        .env_remove("ORCHESTRA_SERVER")
        .env_remove("ORCHESTRA_CREDENTIALS")
        .env_remove("ORCHESTRA_TOKEN")
        .env("HOME", home);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_run_as_themselves_and_an_agent_joins_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let data = dir.path().join("data");
    let server = spawn_secure_server(port, &data, &[]);
    let mut processes = Guard(vec![(server, "orchestra server")]);
    let admin = support::connect_secure(&data.join("admin.credentials")).await;
    let token = std::fs::read_to_string(data.join("node-token")).unwrap();
    let token = token.trim();

    // A wrong secret with the right CA hash: the server refuses to sign, the agent says so.
    let (prefix, _) = token.rsplit_once(':').unwrap();
    let wrong = format!("{prefix}:not-the-secret-but-long-enough-00");
    let refused = agent(
        &url,
        &wrong,
        "intruder",
        &dir.path().join("intruder"),
        dir.path(),
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a wrong token must not join");
    assert!(
        stderr.contains("intruder") && stderr.contains("bearer token is not valid"),
        "the refusal names the node and why: {stderr}"
    );
    assert!(!dir.path().join("intruder/node.credentials").exists());

    // The DNS's own credentials file must exist: the agent says which one it could not use.
    let missing = dir.path().join("no-such.credentials");
    let refused = agent(
        &url,
        token,
        "misconfigured",
        &dir.path().join("m"),
        dir.path(),
    )
    .args(["--dns", "127.0.0.1:0", "--dns-credentials"])
    .arg(&missing)
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a missing credentials file fails"
    );
    assert!(
        stderr.contains("no-such.credentials"),
        "the error names the file: {stderr}"
    );

    for (component, file, extra) in [
        ("scheduler", "scheduler.credentials", None),
        (
            "controller-manager",
            "controller-manager.credentials",
            Some(format!("127.0.0.1:{}", free_port())),
        ),
    ] {
        let credentials = data.join(file);
        let mut args = vec![
            component.to_owned(),
            "--credentials".to_owned(),
            credentials.to_str().unwrap().to_owned(),
        ];
        if let Some(metrics) = extra {
            args.extend(["--metrics-listen".to_owned(), metrics]);
        }
        let name = if component == "scheduler" {
            "orchestra scheduler"
        } else {
            "orchestra controller-manager"
        };
        processes.0.push((spawn_orchestra(args), name));
    }
    let state = dir.path().join("node-1");
    let joined = agent(&url, token, "node-1", &state, dir.path())
        .args(["--dns", "127.0.0.1:0", "--dns-credentials"])
        .arg(data.join("coredns.credentials"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    processes.0.push((joined, "orchestra agent"));

    // The agent obtained a node certificate, kept it, and its Node became Ready.
    wait_for("node-1 Ready", || async {
        let node: Node = admin.get("", "node-1").await.ok()?;
        node.is_ready().then_some(())
    })
    .await;
    assert!(state.join("node.credentials").is_file());

    admin.create(&web_deployment(2)).await.unwrap();
    // The controller manager makes the ReplicaSet and its pods, the scheduler binds them,
    // the agent runs them: each as itself.
    wait_for("two web pods Running and Ready on node-1", || async {
        (ready_pods(&admin, Some("node-1")).await? == 2).then_some(())
    })
    .await;

    // Stop in reverse order: the server last, so that the others stop cleanly.
    let mut all = std::mem::take(&mut processes.0);
    while let Some((child, name)) = all.pop() {
        stop_with_sigterm(child, name);
    }

    let audit = Audit::read(&data.join("audit.log"));
    assert!(audit.allowed("system:kube-controller-manager", "create", "replicasets"));
    assert!(audit.allowed("system:kube-controller-manager", "create", "pods"));
    assert!(
        audit
            .of("system:kube-scheduler")
            .iter()
            .any(|e| e["subresource"] == "binding" && e["allowed"] == true),
        "the scheduler binds as itself"
    );
    assert!(audit.allowed("system:node:node-1", "create", "nodes"));
    for user in [
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:node:node-1",
    ] {
        let denied = audit.unexpected_denials(|who| who == user);
        assert!(
            denied.is_empty(),
            "the built-in roles let {user} do its job: {denied:#?}"
        );
    }
    assert!(
        !audit
            .0
            .iter()
            .any(|e| e["user"] == "admin" && e["resource"] == "pods"),
        "no component acted as admin on pods"
    );
}
