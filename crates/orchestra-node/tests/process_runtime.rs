//! ProcessRuntime: the RuntimeDriver conformance suite, then what is specific to local
//! processes (pod IPs, log rotation, re-adoption, process groups, limits, bad input).
//!
//! These tests run real processes (`/bin/sh`, `sleep`), so they run in real time: waits are
//! bounded poll loops (see `orchestra_node::testing::util`), never sleeps that hope.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_node::testing::util::{read_logs, sandbox_config, wait_for_container, wait_for_log};
use orchestra_node::testing::{Harness, Workload};
use orchestra_node::{
    ContainerConfig, ContainerResources, ContainerSecurity, ContainerState, LimitsMode, LogOptions,
    ProcessRuntime, ProcessRuntimeConfig, RuntimeDriver, RuntimeError,
};

const LIMIT: Duration = Duration::from_secs(10);

/// Fresh ProcessRuntimes, each on its own state directory in a temporary directory.
struct ProcessHarness {
    root: tempfile::TempDir,
    next: AtomicUsize,
}

impl ProcessHarness {
    fn new() -> Self {
        ProcessHarness {
            root: tempfile::tempdir().expect("tempdir"),
            next: AtomicUsize::new(0),
        }
    }

    fn config(&self) -> ProcessRuntimeConfig {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut config = ProcessRuntimeConfig::new(self.root.path().join(format!("state-{n}")));
        // The conformance checks do not need limits: keep them off the machine's cgroups.
        config.cgroup_root = None;
        config
    }
}

#[async_trait]
impl Harness for ProcessHarness {
    type Runtime = ProcessRuntime;

    async fn runtime(&self) -> ProcessRuntime {
        ProcessRuntime::new(self.config())
            .await
            .expect("ProcessRuntime::new")
    }

    fn command(&self, workload: &Workload) -> Vec<String> {
        sh(&workload.shell_script())
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn container(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        command: sh(script),
        ..ContainerConfig::default()
    }
}

mod conformance {
    use super::ProcessHarness;

    orchestra_node::runtime_conformance_tests! {
        #[tokio::test]
        harness = ProcessHarness::new(),
    }
}

/// Whether `pid` is gone (no such process, or a zombie waiting to be reaped).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_gone(pid: u32) {
    tokio::time::timeout(LIMIT, async {
        while !is_gone(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("process {pid} still runs"));
}

/// The number after `key=` in a log.
fn field(log: &str, key: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {log:?}"))
        .to_owned()
}

#[tokio::test]
async fn pod_ips_are_distinct_exported_and_released() {
    let harness = ProcessHarness::new();
    let mut config = harness.config();
    config.ip_range = "127.9.0.0/30".parse().expect("range");
    let rt = ProcessRuntime::new(config).await.expect("runtime");
    let a = rt.run_pod_sandbox(&sandbox_config("a")).await.expect("a");
    let b = rt.run_pod_sandbox(&sandbox_config("b")).await.expect("b");
    let ip_a = rt.sandbox_status(&a).await.expect("a").ip.expect("a ip");
    let ip_b = rt.sandbox_status(&b).await.expect("b").ip.expect("b ip");
    assert_eq!(ip_a.to_string(), "127.9.0.1");
    assert_eq!(ip_b.to_string(), "127.9.0.2");
    let full = rt
        .run_pod_sandbox(&sandbox_config("c"))
        .await
        .expect_err("range full");
    assert!(matches!(full, RuntimeError::Unavailable { .. }), "{full:?}");

    // The container sees its pod's IP and hostname.
    let id = rt
        .create_container(
            &b,
            &container(
                "env",
                "echo ip=$POD_IP; echo host=$HOSTNAME; echo pwd=$(pwd)",
            ),
        )
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    let log = wait_for_log(&rt, &id, "pwd=", LIMIT).await;
    assert_eq!(field(&log, "ip"), "127.9.0.2");
    assert_eq!(field(&log, "host"), "b");
    assert_eq!(field(&log, "pwd"), "/");

    // Removing a sandbox releases its IP, also for a runtime reopened on the same state.
    rt.remove_pod_sandbox(&a).await.expect("remove a");
    let state_dir = rt.config().state_dir.clone();
    drop(rt);
    let mut config = ProcessRuntimeConfig::new(state_dir);
    config.cgroup_root = None;
    config.ip_range = "127.9.0.0/30".parse().expect("range");
    let rt = ProcessRuntime::new(config).await.expect("reopen");
    let c = rt
        .run_pod_sandbox(&sandbox_config("c"))
        .await
        .expect("c gets the released IP");
    assert_eq!(rt.sandbox_status(&c).await.expect("c").ip, Some(ip_a));
    rt.remove_pod_sandbox(&b).await.expect("remove b");
    rt.remove_pod_sandbox(&c).await.expect("remove c");
}

#[tokio::test]
async fn env_and_working_dir_reach_the_process_and_exec() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let dir = tempfile::tempdir().expect("workdir");
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("envs"))
        .await
        .expect("sandbox");
    let mut config = container(
        "c",
        "echo foo=$FOO; echo pwd=$(pwd); echo ready; while :; do sleep 1; done",
    );
    config.env = vec![("FOO".into(), "bar baz".into())];
    config.working_dir = Some(dir.path().to_owned());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    let log = wait_for_log(&rt, &id, "ready", LIMIT).await;
    assert_eq!(field(&log, "foo"), "bar baz");
    assert_eq!(
        PathBuf::from(field(&log, "pwd")),
        dir.path().canonicalize().expect("canon")
    );
    let exec = rt
        .exec_sync(&id, &sh("echo $FOO $POD_IP; pwd"), LIMIT)
        .await
        .expect("exec");
    let out = String::from_utf8_lossy(&exec.stdout);
    let ip = rt
        .sandbox_status(&sandbox)
        .await
        .expect("status")
        .ip
        .expect("ip");
    assert_eq!(
        out,
        format!(
            "bar baz {ip}\n{}\n",
            dir.path().canonicalize().expect("canon").display()
        )
    );
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn logs_rotate_by_size_and_the_process_keeps_writing() {
    let harness = ProcessHarness::new();
    let mut config = harness.config();
    config.log_max_bytes = 500;
    config.log_max_files = 2;
    config.log_check_interval = Duration::from_secs(3600); // rotation only when the test asks
    let rt = ProcessRuntime::new(config).await.expect("runtime");
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("rotate"))
        .await
        .expect("sandbox");
    let script = "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done; echo batch-done; \
                  while [ ! -e \"$MARK\" ]; do sleep 0.02; done; echo after-rotation; \
                  while :; do sleep 1; done";
    let mark = tempfile::tempdir().expect("mark dir");
    let mut config = container("writer", script);
    config.env = vec![("MARK".into(), mark.path().join("go").display().to_string())];
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "batch-done", LIMIT).await;
    let path = rt
        .container_status(&id)
        .await
        .expect("status")
        .log_path
        .expect("log path");
    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("0.log"));
    assert!(
        path.ends_with(format!("pods/{sandbox}/writer/0.log")),
        "{}",
        path.display()
    );

    assert_eq!(rt.rotate_logs().expect("rotate"), 1);
    assert_eq!(
        rt.rotate_logs().expect("rotate again"),
        0,
        "the emptied file is small"
    );
    let rotated = std::fs::read_to_string(format!("{}.1", path.display())).expect("rotated copy");
    assert!(rotated.starts_with("line-0\n") && rotated.ends_with("batch-done\n"));
    assert_eq!(std::fs::metadata(&path).expect("current").len(), 0);

    // The process appends to the emptied file (at its start: no hole where the old data was).
    std::fs::write(mark.path().join("go"), b"").expect("mark");
    let all = wait_for_log(&rt, &id, "after-rotation", LIMIT).await;
    assert_eq!(
        std::fs::read_to_string(&path).expect("current"),
        "after-rotation\n"
    );
    // logs returns the rotated copy and the current file, in order.
    assert!(
        all.starts_with("line-0\n") && all.ends_with("batch-done\nafter-rotation\n"),
        "{all:?}"
    );
    let tail = read_logs(
        &rt,
        &id,
        LogOptions {
            tail_lines: Some(2),
            ..LogOptions::default()
        },
    )
    .await
    .expect("tail");
    assert_eq!(tail, "batch-done\nafter-rotation\n");
    // Its lines carry times (the runtime's time index, rotated with the log): every line,
    // in order; `since` after the last one leaves nothing, `since` at it keeps that line.
    let timed = LogOptions {
        timestamps: true,
        ..LogOptions::default()
    };
    let stamped = read_logs(&rt, &id, timed).await.expect("timestamps");
    let mut times = Vec::new();
    let mut text = String::new();
    for line in stamped.lines() {
        let (time, rest) = line.split_once(' ').expect("a time and a space");
        times.push(time.parse::<jiff::Timestamp>().expect("an RFC 3339 time"));
        text.push_str(rest);
        text.push('\n');
    }
    assert_eq!(text, all, "the same lines, each with a time");
    assert!(times.is_sorted(), "times never go back: {times:?}");
    let last = *times.last().expect("lines");
    let since = |at| LogOptions {
        since: Some(at),
        ..LogOptions::default()
    };
    let after = last + jiff::SignedDuration::from_nanos(1);
    assert_eq!(read_logs(&rt, &id, since(after)).await.expect("since"), "");
    let at_last = read_logs(&rt, &id, since(last)).await.expect("since");
    assert!(at_last.ends_with("after-rotation\n"), "{at_last:?}");

    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
    assert!(!path.exists(), "logs go with the container");
}

#[tokio::test]
async fn a_second_runtime_readopts_running_processes() {
    let harness = ProcessHarness::new();
    let config = harness.config();
    let first = ProcessRuntime::new(config.clone())
        .await
        .expect("first runtime");
    let sandbox = first
        .run_pod_sandbox(&sandbox_config("adopt"))
        .await
        .expect("sandbox");
    let id = first
        .create_container(
            &sandbox,
            &container("long", "echo pid=$$; while :; do sleep 1; done"),
        )
        .await
        .expect("create");
    first.start_container(&id).await.expect("start");
    let log = wait_for_log(&first, &id, "pid=", LIMIT).await;
    let pid: u32 = field(&log, "pid").parse().expect("pid");
    let before = first.container_status(&id).await.expect("status");
    drop(first);

    let second = ProcessRuntime::new(config.clone())
        .await
        .expect("second runtime");
    let status = second
        .container_status(&id)
        .await
        .expect("status after restart");
    assert_eq!(status.state, ContainerState::Running, "{status:?}");
    assert_eq!(status.started_at, before.started_at, "not restarted");
    assert!(!is_gone(pid), "the process still runs");
    let listed = second.list().await.expect("list");
    assert!(
        listed
            .containers
            .iter()
            .any(|c| c.id == id && c.state == ContainerState::Running)
    );
    let exec = second
        .exec_sync(&id, &sh("echo $POD_IP"), LIMIT)
        .await
        .expect("exec");
    assert_eq!(exec.exit_code, 0);

    second
        .stop_container(&id, LIMIT)
        .await
        .expect("stop the adopted process");
    wait_gone(pid).await;
    let stopped = second.container_status(&id).await.expect("status");
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(
        stopped.exit_code, None,
        "an adopted process's exit code is unknown"
    );
    assert_eq!(stopped.reason, "Unknown");

    // A process that ends while no runtime runs is reported as exited, code unknown.
    let other = second
        .create_container(
            &sandbox,
            &container("other", "echo pid=$$; while :; do sleep 1; done"),
        )
        .await
        .expect("create");
    second.start_container(&other).await.expect("start");
    let log = wait_for_log(&second, &other, "pid=", LIMIT).await;
    let other_pid: u32 = field(&log, "pid").parse().expect("pid");
    drop(second);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{other_pid}")])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_gone(other_pid).await;
    let third = ProcessRuntime::new(config).await.expect("third runtime");
    let status = third.container_status(&other).await.expect("status");
    assert_eq!(
        (status.state, status.exit_code),
        (ContainerState::Exited, None),
        "{status:?}"
    );
    assert_eq!(status.reason, "Unknown");
    third.remove_pod_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn stopping_kills_the_whole_process_group() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("group"))
        .await
        .expect("sandbox");
    // The shell ignores TERM, its child does not: only a signal to the group reaches both.
    let id = rt
        .create_container(
            &sandbox,
            &container("parent", "sleep 1000 & echo child=$!; wait"),
        )
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    let log = wait_for_log(&rt, &id, "child=", LIMIT).await;
    let child: u32 = field(&log, "child").parse().expect("child pid");
    rt.stop_container(&id, LIMIT).await.expect("stop");
    wait_gone(child).await;

    // When the main process exits on its own, what it left behind is killed too.
    let id = rt
        .create_container(
            &sandbox,
            &container("leaver", "sleep 1000 & echo child=$!; exit 0"),
        )
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    let log = wait_for_log(&rt, &id, "child=", LIMIT).await;
    let child: u32 = field(&log, "child").parse().expect("child pid");
    let status = wait_for_container(&rt, &id, LIMIT, "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    assert_eq!(status.exit_code, Some(0));
    wait_gone(child).await;
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn signals_give_128_plus_n_and_stop_signal_is_honoured() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("signals"))
        .await
        .expect("sandbox");
    let id = rt
        .create_container(&sandbox, &container("self", "kill -USR1 $$"))
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    let status = wait_for_container(&rt, &id, LIMIT, "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    assert_eq!(status.exit_code, Some(128 + 10), "{status:?}");
    assert_eq!(status.reason, "Error");

    let mut config = container(
        "int",
        "trap 'echo got-int; exit 0' INT; echo ready; while :; do sleep 0.05; done",
    );
    config.stop_signal = Some("SIGINT".into());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "ready", LIMIT).await;
    rt.stop_container(&id, LIMIT).await.expect("stop");
    let status = rt.container_status(&id).await.expect("status");
    assert_eq!(status.exit_code, Some(0), "{status:?}");
    assert!(
        read_logs(&rt, &id, LogOptions::default())
            .await
            .expect("logs")
            .contains("got-int")
    );

    let mut bad = container("bad", "true");
    bad.stop_signal = Some("SIGNOPE".into());
    let err = rt
        .create_container(&sandbox, &bad)
        .await
        .expect_err("bad signal");
    assert!(err.to_string().contains("SIGNOPE"), "{err}");
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

/// A program named without a path is looked up in the container's own `PATH` (the runtime
/// resolves it before spawning, so that the spawn need not fork), and the process still sees
/// the name it was given as its `argv[0]`.
#[tokio::test]
async fn a_program_is_found_in_the_containers_path_and_keeps_its_name() {
    use std::os::unix::fs::PermissionsExt;
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let bin = tempfile::tempdir().expect("bin dir");
    let script = bin.path().join("greet");
    std::fs::write(
        &script,
        "#!/bin/sh\necho greeted=yes\necho ready\nsleep 100\n",
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("lookup"))
        .await
        .expect("sandbox");
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let by_name = |name: &str, command: Vec<String>| ContainerConfig {
        name: name.into(),
        command,
        env: vec![("PATH".into(), path.clone())],
        ..ContainerConfig::default()
    };
    let greet = by_name("greet", vec!["greet".into()]);
    let shell = by_name(
        "shell",
        vec![
            "sh".into(),
            "-c".into(),
            "echo arg0=$(tr '\\0' '\\n' < /proc/$$/cmdline | head -n 1); echo ready; sleep 100"
                .into(),
        ],
    );
    let greet = rt.create_container(&sandbox, &greet).await.expect("create");
    let shell = rt.create_container(&sandbox, &shell).await.expect("create");
    rt.start_container(&greet).await.expect("start");
    rt.start_container(&shell).await.expect("start");
    let log = wait_for_log(&rt, &greet, "ready", LIMIT).await;
    assert_eq!(field(&log, "greeted"), "yes");
    let log = wait_for_log(&rt, &shell, "ready", LIMIT).await;
    assert_eq!(field(&log, "arg0"), "sh");
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn a_security_context_is_applied_or_refused_never_ignored() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("security"))
        .await
        .expect("sandbox");
    // The mesh's init container: NET_ADMIN would be the node's, so it is refused.
    let mut init = container("mesh-init", "true");
    init.security = ContainerSecurity {
        run_as_user: Some(0),
        add_capabilities: vec!["NET_ADMIN".into()],
        drop_capabilities: vec!["ALL".into()],
    };
    let err = rt
        .create_container(&sandbox, &init)
        .await
        .expect_err("capabilities added");
    assert!(
        matches!(&err, RuntimeError::InvalidConfig { what, .. } if what == "securityContext"),
        "{err:?}"
    );
    assert!(err.to_string().contains("NET_ADMIN"), "{err}");

    // Another uid than the agent's is refused too; the agent's own runs, as that uid.
    let own = rustix::process::geteuid().as_raw();
    let mut other = container("other", "true");
    other.security.run_as_user = Some(i64::from(own) + 1);
    let err = rt
        .create_container(&sandbox, &other)
        .await
        .expect_err("another uid");
    assert!(err.to_string().contains("agent's own user"), "{err}");

    let mut mine = container("mine", "echo uid=$(id -u)");
    mine.security.run_as_user = Some(i64::from(own));
    let id = rt.create_container(&sandbox, &mine).await.expect("create");
    rt.start_container(&id).await.expect("start");
    let status = wait_for_container(&rt, &id, LIMIT, "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(status.config.security.run_as_user, Some(i64::from(own)));
    let log = wait_for_log(&rt, &id, "uid=", LIMIT).await;
    assert_eq!(field(&log, "uid"), own.to_string());
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn a_bad_working_dir_gives_a_clear_error() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("workdir"))
        .await
        .expect("sandbox");
    let mut config = container("c", "true");
    config.working_dir = Some(PathBuf::from("/nonexistent/orchestra-dir"));
    let err = rt
        .create_container(&sandbox, &config)
        .await
        .expect_err("missing dir");
    assert!(
        matches!(&err, RuntimeError::InvalidConfig { what, .. } if what == "workingDir"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("/nonexistent/orchestra-dir"),
        "{err}"
    );

    // A directory that disappears between create and start: StartFailed, and the status says why.
    let dir = tempfile::tempdir().expect("dir");
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).expect("mkdir");
    config.working_dir = Some(gone.clone());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    std::fs::remove_dir(&gone).expect("rmdir");
    let err = rt
        .start_container(&id)
        .await
        .expect_err("start without its dir");
    assert!(matches!(err, RuntimeError::StartFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("working directory"), "{err}");
    let status = rt.container_status(&id).await.expect("status");
    assert_eq!(
        (status.state, status.reason.as_str()),
        (ContainerState::Exited, "StartError")
    );
    assert!(
        status.message.contains(&gone.display().to_string()),
        "{status:?}"
    );
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

/// The address-space limit of a process, from /proc/PID/limits.
fn max_address_space(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .expect("line");
    line.split_whitespace()
        .nth(3)
        .expect("soft limit")
        .to_owned()
}

#[tokio::test]
async fn memory_limit_is_enforced_as_an_rlimit_without_cgroups() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await; // cgroup_root None: rlimits
    assert_eq!(rt.limits_mode(), &LimitsMode::Rlimit);
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("limits"))
        .await
        .expect("sandbox");
    let mut config = container("limited", "echo pid=$$; while :; do sleep 1; done");
    config.resources = ContainerResources {
        memory_limit_bytes: Some(256 * 1024 * 1024),
        cpu_limit_millis: Some(500),
        ..ContainerResources::default()
    };
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    let log = wait_for_log(&rt, &id, "pid=", LIMIT).await;
    let pid: u32 = field(&log, "pid").parse().expect("pid");
    assert_eq!(max_address_space(pid), (256 * 1024 * 1024).to_string());
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn the_default_limits_mode_is_detected_and_reported() {
    let harness = ProcessHarness::new();
    let mut config = harness.config();
    config.cgroup_root = ProcessRuntimeConfig::new("unused").cgroup_root;
    let rt = ProcessRuntime::new(config).await.expect("runtime");
    let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    match rt.limits_mode() {
        LimitsMode::CgroupV2 { root } => {
            assert!(cgroup_v2, "cgroup v2 chosen without a cgroup v2 hierarchy");
            assert!(root.join("cgroup.subtree_control").exists());
        }
        LimitsMode::Rlimit => println!("limits mode here: rlimit (cgroup v2 present: {cgroup_v2})"),
    }
}

#[tokio::test]
async fn state_files_that_are_not_json_give_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("containers")).expect("mkdir");
    std::fs::write(dir.path().join("containers/abc.json"), b"{not json").expect("write");
    let mut config = ProcessRuntimeConfig::new(dir.path());
    config.cgroup_root = None;
    let err = match ProcessRuntime::new(config).await {
        Ok(_) => panic!("a corrupt state file is accepted"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("abc.json"), "{err}");
}

#[tokio::test]
async fn a_reused_pid_is_not_mistaken_for_the_container() {
    let harness = ProcessHarness::new();
    let config = harness.config();
    let first = ProcessRuntime::new(config.clone())
        .await
        .expect("first runtime");
    let sandbox = first
        .run_pod_sandbox(&sandbox_config("reuse"))
        .await
        .expect("sandbox");
    let id = first
        .create_container(
            &sandbox,
            &container("c", "echo pid=$$; while :; do sleep 1; done"),
        )
        .await
        .expect("create");
    first.start_container(&id).await.expect("start");
    let log = wait_for_log(&first, &id, "pid=", LIMIT).await;
    let pid: u32 = field(&log, "pid").parse().expect("pid");
    drop(first);

    // Make the record say the pid belonged to a process that started at another time, as if
    // the container had ended and the number had been reused.
    let file = config.state_dir.join(format!("containers/{id}.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read record")).expect("json");
    let ticks = record["pid_start_ticks"]
        .as_u64()
        .expect("start ticks recorded");
    record["pid_start_ticks"] = serde_json::json!(ticks + 1);
    std::fs::write(&file, serde_json::to_vec(&record).expect("json")).expect("write record");

    let second = ProcessRuntime::new(config).await.expect("second runtime");
    let status = second.container_status(&id).await.expect("status");
    assert_eq!(
        (status.state, status.exit_code),
        (ContainerState::Exited, None),
        "{status:?}"
    );
    assert_eq!(status.reason, "Unknown");
    // Removing the container must not signal a process it does not own.
    second.remove_pod_sandbox(&sandbox).await.expect("remove");
    assert!(
        !is_gone(pid),
        "a process that is not the container's was signalled"
    );
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_gone(pid).await;
}

#[tokio::test]
async fn an_exec_that_times_out_is_killed_with_its_children() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("exec-kill"))
        .await
        .expect("sandbox");
    let id = rt
        .create_container(
            &sandbox,
            &container("c", "echo ready; while :; do sleep 1; done"),
        )
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "ready", LIMIT).await;
    let dir = tempfile::tempdir().expect("dir");
    let pid_file = dir.path().join("pid");
    let script = format!("sleep 1000 & echo $! > {}; wait", pid_file.display());
    let err = rt
        .exec_sync(&id, &sh(&script), Duration::from_secs(1))
        .await
        .expect_err("times out");
    assert!(matches!(err, RuntimeError::Timeout { .. }), "{err:?}");
    let child: u32 = std::fs::read_to_string(&pid_file)
        .expect("the exec wrote its child's pid")
        .trim()
        .parse()
        .expect("pid");
    wait_gone(child).await;
    let status = rt.container_status(&id).await.expect("status");
    assert_eq!(
        status.state,
        ContainerState::Running,
        "the container is not disturbed"
    );
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

#[tokio::test]
async fn logs_go_to_the_sandbox_log_directory_when_given() {
    let harness = ProcessHarness::new();
    let rt = harness.runtime().await;
    let logs = tempfile::tempdir().expect("log dir");
    let mut config = sandbox_config("logdir");
    config.log_directory = Some(logs.path().to_owned());
    let sandbox = rt.run_pod_sandbox(&config).await.expect("sandbox");
    let mut c = container("app", "echo hello");
    c.attempt = 3;
    let id = rt.create_container(&sandbox, &c).await.expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_container(&rt, &id, LIMIT, "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    let path = logs.path().join("app/3.log");
    assert_eq!(
        rt.container_status(&id).await.expect("status").log_path,
        Some(path.clone())
    );
    assert_eq!(std::fs::read_to_string(&path).expect("log file"), "hello\n");
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
    assert!(!path.exists(), "the container's log goes with it");
    assert!(
        logs.path().exists(),
        "a log directory the runtime was given is left in place"
    );
}
