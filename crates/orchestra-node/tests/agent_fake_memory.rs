//! Memory per simulated pod in FakeRuntime: 10,000 sandboxes with one started container each,
//! configured as the agent configures them, measured as resident memory growth (Linux only:
//! `/proc/self/statm`; skipped elsewhere with a printed reason).

use std::collections::BTreeMap;

use orchestra_node::fake::FakeRuntime;
use orchestra_node::{ContainerConfig, RuntimeDriver, SandboxConfig};

const PODS: usize = 10_000;

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident * 4096)
}

#[tokio::test(start_paused = true)]
async fn fake_pods_cost_a_few_kib_each() {
    let Some(before) = rss_bytes() else {
        println!("skipped: /proc/self/statm is not readable on this system");
        return;
    };
    let runtime = FakeRuntime::new();
    for i in 0..PODS {
        let uid = format!("6f1c2d4e-0000-4000-8000-{i:012}");
        let sandbox = runtime
            .run_pod_sandbox(&SandboxConfig {
                name: format!("web-7d9f8c6b5-{i:05}"),
                namespace: "default".into(),
                uid: uid.clone(),
                attempt: 0,
                hostname: format!("web-7d9f8c6b5-{i:05}"),
                labels: BTreeMap::from([("orchestra.io/pod-uid".into(), uid.clone())]),
                ..SandboxConfig::default()
            })
            .await
            .unwrap();
        let container = runtime
            .create_container(
                &sandbox,
                &ContainerConfig {
                    name: "web".into(),
                    image: "nginx:1.27".into(),
                    labels: BTreeMap::from([
                        ("orchestra.io/pod-uid".into(), uid),
                        ("orchestra.io/container-name".into(), "web".into()),
                    ]),
                    ..ContainerConfig::default()
                },
            )
            .await
            .unwrap();
        runtime.start_container(&container).await.unwrap();
    }
    let after = rss_bytes().unwrap_or(before);
    let per_pod = after.saturating_sub(before) / PODS as u64;
    println!("fake runtime: {per_pod} bytes of resident memory per pod ({PODS} pods)");
    assert_eq!(runtime.counts(), (PODS, PODS));
    // 150,000 pods must fit in well under a gigabyte.
    assert!(per_pod < 4096, "{per_pod} bytes per pod");
}
