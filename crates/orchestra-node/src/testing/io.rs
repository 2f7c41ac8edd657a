//! Exec and log checks: `exec_sync` output, exit code and timeout; `logs` content, tail, limit,
//! follow, and per-line times (`since`, `timestamps`).

use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;

use super::Harness;
use super::util::{cleanup, read_logs, sandbox_config, wait_for_container, wait_for_log};
use super::workload::{Step, Workload};
use crate::runtime::{ContainerState, LogOptions, RuntimeDriver, RuntimeError};

/// `exec_sync` in a running container returns the command's exit code, stdout and stderr; a
/// command outliving its timeout gives [`RuntimeError::Timeout`]; exec in a container that does
/// not run fails.
pub async fn exec_sync<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("exec"))
        .await
        .expect("run");
    let config = harness.container_config("target", &Workload::run_forever());
    let id = rt
        .create_container(&sandbox, &config)
        .await
        .expect("create");
    let command = harness.command(&Workload::print_and_exit(&["out"], 0));
    assert!(
        rt.exec_sync(&id, &command, limit).await.is_err(),
        "exec in a created container fails"
    );
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "ready", limit).await;

    let workload = Workload::new(vec![
        Step::Print("to stdout".into()),
        Step::PrintErr("to stderr".into()),
        Step::Exit(4),
    ]);
    let result = rt
        .exec_sync(&id, &harness.command(&workload), limit)
        .await
        .expect("exec_sync");
    assert_eq!(result.exit_code, 4);
    assert_eq!(String::from_utf8_lossy(&result.stdout), "to stdout\n");
    assert_eq!(String::from_utf8_lossy(&result.stderr), "to stderr\n");
    let ok = rt.exec_sync(&id, &command, limit).await.expect("exec_sync");
    assert_eq!((ok.exit_code, ok.stdout.as_slice()), (0, &b"out\n"[..]));

    let forever = harness.command(&Workload::new(vec![Step::RunForever]));
    let timeout = Duration::from_millis(200);
    match tokio::time::timeout(limit, rt.exec_sync(&id, &forever, timeout)).await {
        Ok(Err(RuntimeError::Timeout { after, .. })) => assert_eq!(after, timeout),
        Ok(other) => panic!("an exec outliving its timeout gives Timeout, got {other:?}"),
        Err(_) => panic!("exec_sync did not honour its timeout of {timeout:?}"),
    }
    // The container is not disturbed by exec.
    let status = rt.container_status(&id).await.expect("status");
    assert_eq!(status.state, ContainerState::Running);
    cleanup(&rt, &sandbox).await;
}

/// `logs` returns what the container wrote on stdout and stderr; `tail_lines` and `limit_bytes`
/// select part of it; unknown containers are NotFound.
pub async fn logs<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("logs"))
        .await
        .expect("run");
    let workload = Workload::new(vec![
        Step::Print("one".into()),
        Step::PrintErr("two".into()),
        Step::Print("three".into()),
        Step::Exit(0),
    ]);
    let id = rt
        .create_container(&sandbox, &harness.container_config("writer", &workload))
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_container(&rt, &id, limit, "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;

    let all = read_logs(&rt, &id, LogOptions::default())
        .await
        .expect("logs");
    assert_eq!(all, "one\ntwo\nthree\n");
    let tail = LogOptions {
        tail_lines: Some(2),
        ..LogOptions::default()
    };
    assert_eq!(
        read_logs(&rt, &id, tail).await.expect("tail"),
        "two\nthree\n"
    );
    let bytes = LogOptions {
        limit_bytes: Some(5),
        ..LogOptions::default()
    };
    assert_eq!(read_logs(&rt, &id, bytes).await.expect("limit"), "one\nt");
    // Following an exited container delivers what it wrote and ends.
    let follow = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let followed = tokio::time::timeout(limit, read_logs(&rt, &id, follow))
        .await
        .expect("following an exited container's log ends")
        .expect("follow");
    assert_eq!(followed, "one\ntwo\nthree\n");

    let err = match rt
        .logs(&"no-such-container".into(), LogOptions::default())
        .await
    {
        Ok(_) => panic!("logs of an unknown container"),
        Err(e) => e,
    };
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
    cleanup(&rt, &sandbox).await;
}

/// Every line of a log has a time: `timestamps` starts each with its RFC 3339 time, in order,
/// and `since` keeps the lines written at or after a time (a line written later than another
/// is kept alone from its own time on; nothing is written after the last line's time).
pub async fn logs_since_and_timestamps<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("logs-since"))
        .await
        .expect("run");
    let workload = Workload::new(vec![
        Step::Print("early".into()),
        Step::Sleep(Duration::from_millis(300)),
        Step::Print("late".into()),
        Step::Exit(0),
    ]);
    let id = rt
        .create_container(&sandbox, &harness.container_config("dated", &workload))
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_container(&rt, &id, limit, "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;

    let timed = LogOptions {
        timestamps: true,
        ..LogOptions::default()
    };
    let stamped = read_logs(&rt, &id, timed.clone())
        .await
        .expect("timestamps");
    let lines: Vec<(jiff::Timestamp, &str)> = stamped
        .lines()
        .map(|line| {
            let (time, text) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("no time before {line:?} in {stamped:?}"));
            let time = time
                .parse()
                .unwrap_or_else(|e| panic!("{time:?} is not an RFC 3339 time ({e}): {stamped:?}"));
            (time, text)
        })
        .collect();
    let texts: Vec<&str> = lines.iter().map(|(_, text)| *text).collect();
    assert_eq!(texts, ["early", "late"], "{stamped:?}");
    let (early, late) = (lines[0].0, lines[1].0);
    assert!(early <= late, "times go back: {stamped:?}");

    let since = |at: jiff::Timestamp| LogOptions {
        since: Some(at),
        ..LogOptions::default()
    };
    let from_late = read_logs(&rt, &id, since(late)).await.expect("since");
    if early < late {
        assert_eq!(from_late, "late\n");
    } else {
        assert_eq!(from_late, "early\nlate\n", "both lines have one time");
    }
    let after = late + jiff::SignedDuration::from_nanos(1);
    assert_eq!(read_logs(&rt, &id, since(after)).await.expect("since"), "");
    let last = LogOptions {
        tail_lines: Some(1),
        ..timed
    };
    let late_line = stamped.lines().nth(1).expect("two lines");
    assert_eq!(
        read_logs(&rt, &id, last).await.expect("tail"),
        format!("{late_line}\n")
    );
    cleanup(&rt, &sandbox).await;
}

/// A followed log delivers output written after the stream was opened, and ends when the
/// container exits.
pub async fn logs_follow<H: Harness>(harness: &H) {
    let rt = harness.runtime().await;
    let limit = harness.wait_limit();
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("follow"))
        .await
        .expect("run");
    let workload = Workload::new(vec![
        Step::Print("first".into()),
        Step::Sleep(Duration::from_millis(700)),
        Step::Print("second".into()),
        Step::Exit(0),
    ]);
    let id = rt
        .create_container(&sandbox, &harness.container_config("slow", &workload))
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(&rt, &id, "first", limit).await;

    let mut stream = rt
        .logs(
            &id,
            LogOptions {
                follow: true,
                ..LogOptions::default()
            },
        )
        .await
        .expect("logs follow");
    let mut seen = BytesMut::new();
    let read = tokio::time::timeout(limit, async {
        while let Some(chunk) = stream.next().await {
            seen.extend_from_slice(&chunk.expect("log chunk"));
        }
    })
    .await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        read.is_ok(),
        "the followed stream did not end after the container exited: {text:?}"
    );
    assert_eq!(text, "first\nsecond\n");
    cleanup(&rt, &sandbox).await;
}
