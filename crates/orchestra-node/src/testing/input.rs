//! Bad input: every mistake gives an error (or an Exited status) with a clear reason, never a
//! panic or a hang.

use super::Harness;
use super::util::{cleanup, sandbox_config, wait_for_container, wait_for_log};
use super::workload::Workload;
use crate::runtime::{ContainerState, RuntimeDriver, RuntimeError, SandboxId};

/// An empty command, a command that does not exist, an unknown sandbox, starting a container
/// twice: each is refused with an error saying what is wrong (a command that does not exist may
/// instead be reported as an Exited container with a reason and a message).
pub async fn bad_input<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("bad-input"))
        .await
        .expect("run");

    // No command at all.
    let mut empty = harness.container_config("empty", &Workload::print_and_exit(&[], 0));
    empty.command.clear();
    empty.args.clear();
    if harness.empty_command_is_invalid() {
        let err = rt
            .create_container(&sandbox, &empty)
            .await
            .expect_err("empty command");
        assert!(
            matches!(err, RuntimeError::InvalidConfig { .. }),
            "expected InvalidConfig, got {err:?}"
        );
    }

    // A command that does not exist.
    let mut missing = harness.container_config("missing", &Workload::print_and_exit(&[], 0));
    missing.command = harness.missing_command();
    missing.args.clear();
    match rt.create_container(&sandbox, &missing).await {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(id) => match rt.start_container(&id).await {
            Err(e) => {
                assert!(
                    matches!(e, RuntimeError::StartFailed { .. }),
                    "expected StartFailed, got {e:?}"
                );
                assert!(
                    e.to_string().contains(&missing.command[0]),
                    "the error names the command: {e}"
                );
            }
            Ok(()) => {
                let status = wait_for_container(&rt, &id, limit, "exit", |s| {
                    s.state == ContainerState::Exited
                })
                .await;
                assert_ne!(status.exit_code, Some(0), "{status:?}");
                assert!(
                    !status.reason.is_empty() && !status.message.is_empty(),
                    "{status:?}"
                );
            }
        },
    }

    // A container in a sandbox that does not exist.
    let ok = harness.container_config("ok", &Workload::run_forever());
    let err = rt
        .create_container(&SandboxId::from("no-such-sandbox"), &ok)
        .await
        .expect_err("unknown sandbox");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");

    // Starting a running container.
    let id = rt.create_container(&sandbox, &ok).await.expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "ready", limit).await;
    let err = rt
        .start_container(&id)
        .await
        .expect_err("starting a running container");
    assert!(
        matches!(err, RuntimeError::InvalidState { .. }),
        "expected InvalidState, got {err:?}"
    );

    // A container in a stopped sandbox.
    rt.stop_pod_sandbox(&sandbox).await.expect("stop sandbox");
    assert!(
        rt.create_container(&sandbox, &ok).await.is_err(),
        "creating a container in a stopped sandbox fails"
    );
    cleanup(&rt, &sandbox).await;
}
