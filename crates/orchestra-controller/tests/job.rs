//! The Job controller over LocalClient in paused time, with a stand-in kubelet that runs each
//! pod for one tick and then finishes it as the test says: parallelism and completions are
//! kept, failures back off 10 s then 20 s and past the limit fail the job, and the active
//! deadline fails a job whose pods never finish; a finished job with ttlSecondsAfterFinished
//! goes with its pods once the TTL runs out; an Indexed job runs one pod per index. Claiming
//! (a job with a manual selector): a matching orphan is adopted and counted (one that already
//! succeeded toward `completions`), a pod of another controller is never touched, an adopted
//! pod relabelled out of the selector is released, and a job being deleted adopts nothing.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestra_api::registry::{DeleteOptions, ListOptions};
use orchestra_api::resources::{CompletionMode, Job, Pod, PodPhase, PodStatus, RestartPolicy};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, OwnerReference, testing};
use orchestra_controller::controllers::garbage_collector::add_garbage_collectors;
use orchestra_controller::controllers::job::plan::COMPLETION_INDEX_ANNOTATION;
use orchestra_controller::controllers::pods::is_active;
use orchestra_controller::controllers::{JobController, TtlAfterFinishedController};
use orchestra_controller::{ControllerSet, SharedInformers};
use orchestra_store::MemStore;
use support::{Running, events_about, eventually, eventually_within, orphan, others_pod, start};
use tokio::time::Instant;

/// A pod labelled `app: batch` whose spec is the jobs' template's.
fn batch_pod() -> Pod {
    let mut pod = testing::pod("ns", "x", "batch");
    pod.spec.restart_policy = Some(RestartPolicy::Never);
    pod
}

fn job(completions: i32, parallelism: i32) -> Job {
    let mut job = Job {
        metadata: ObjectMeta::namespaced("ns", "batch"),
        ..Job::default()
    };
    job.spec.completions = Some(completions);
    job.spec.parallelism = Some(parallelism);
    job.spec.template.spec = batch_pod().spec;
    job
}

/// The Job controller, running.
fn start_jobs(client: &LocalClient) -> Running {
    let informers = SharedInformers::new(client.clone());
    start(JobController::controller(&informers))
}

/// What the stand-in kubelet saw: when each pod first appeared, and the most pods active at once.
#[derive(Debug, Default)]
struct Seen {
    first_seen: HashMap<String, Instant>,
    max_active: usize,
}

/// Every second (virtual): a new pod starts Running; a Running one ends in `outcome` (or
/// keeps running when `outcome` is None).
fn kubelet(
    client: LocalClient,
    outcome: Option<PodPhase>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let pods = client
                .list::<Pod>(Some("ns"), &ListOptions::default())
                .await
                .unwrap();
            {
                let mut seen = record.lock().unwrap();
                let active = pods.items.iter().filter(|p| is_active(p)).count();
                seen.max_active = seen.max_active.max(active);
                for pod in &pods.items {
                    seen.first_seen
                        .entry(pod.metadata.name.clone())
                        .or_insert_with(Instant::now);
                }
            }
            for mut pod in pods.items {
                let next = match pod.status.as_ref().and_then(|s| s.phase) {
                    None => PodPhase::Running,
                    Some(PodPhase::Running) => match outcome {
                        Some(phase) => phase,
                        None => continue,
                    },
                    Some(_) => continue,
                };
                pod.status = Some(PodStatus {
                    phase: Some(next),
                    ..PodStatus::default()
                });
                let _ = client.update_status(&pod).await;
            }
        }
    });
    (seen, task)
}

async fn condition(client: &LocalClient) -> Option<(String, String)> {
    let job: Job = client.get("ns", "batch").await.unwrap();
    job.status?
        .conditions
        .first()
        .map(|c| (c.type_.clone(), c.reason.clone()))
}

async fn pods(client: &LocalClient) -> Vec<Pod> {
    client
        .list::<Pod>(Some("ns"), &ListOptions::default())
        .await
        .unwrap()
        .items
}

#[tokio::test(start_paused = true)]
async fn runs_to_completion_within_parallelism() {
    let client = LocalClient::new(MemStore::new());
    let created = client.create(&job(5, 2)).await.unwrap();
    let running = start_jobs(&client);
    let (seen, kubelet) = kubelet(client.clone(), Some(PodPhase::Succeeded));
    eventually_within("complete", Duration::from_secs(60), || async {
        condition(&client).await.is_some()
    })
    .await;
    assert_eq!(
        condition(&client).await,
        Some(("Complete".into(), String::new()))
    );
    let job: Job = client.get("ns", "batch").await.unwrap();
    let status = job.status.unwrap();
    assert_eq!(
        (status.active, status.succeeded, status.failed),
        (Some(0), Some(5), Some(0))
    );
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    let pods = pods(&client).await;
    assert_eq!(pods.len(), 5, "exactly as many pods as completions");
    assert!(pods.iter().all(|p| {
        let owner = p.metadata.controller_ref().unwrap();
        owner.uid == created.metadata.uid && owner.kind == "Job"
    }));
    assert!(pods.iter().all(|p| p.metadata.name.starts_with("batch-")));
    assert_eq!(seen.lock().unwrap().max_active, 2, "parallelism 2");
    // Events on the job: one SuccessfulCreate per pod, then Completed.
    eventually_within("the job's events", Duration::from_secs(10), || async {
        !events_about(&client, "ns", "Job", "batch", "Completed")
            .await
            .is_empty()
    })
    .await;
    let completed = &events_about(&client, "ns", "Job", "batch", "Completed").await[0];
    assert_eq!(
        (completed.type_.as_str(), completed.message.as_str()),
        ("Normal", "Job completed")
    );
    assert_eq!(completed.involved_object.uid, created.metadata.uid);
    assert_eq!(
        completed.source.as_ref().unwrap().component,
        "job-controller"
    );
    let mut created_messages: Vec<String> =
        events_about(&client, "ns", "Job", "batch", "SuccessfulCreate")
            .await
            .into_iter()
            .map(|e| e.message)
            .collect();
    created_messages.sort();
    let mut expected: Vec<String> = pods
        .iter()
        .map(|p| format!("Created pod: {}", p.metadata.name))
        .collect();
    expected.sort();
    assert_eq!(created_messages, expected);
    kubelet.abort();
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_and_past_the_limit_fail_the_job() {
    let client = LocalClient::new(MemStore::new());
    let mut spec = job(1, 1);
    spec.spec.backoff_limit = Some(2);
    client.create(&spec).await.unwrap();
    let running = start_jobs(&client);
    let (seen, kubelet) = kubelet(client.clone(), Some(PodPhase::Failed));
    eventually_within("failed", Duration::from_secs(120), || async {
        condition(&client).await.is_some()
    })
    .await;
    assert_eq!(
        condition(&client).await,
        Some(("Failed".into(), "BackoffLimitExceeded".into()))
    );
    let job: Job = client.get("ns", "batch").await.unwrap();
    assert_eq!(
        job.status.as_ref().unwrap().failed,
        Some(3),
        "limit 2: the third failure fails it"
    );
    assert_eq!(job.status.as_ref().unwrap().active, Some(0));
    eventually_within("the failure's event", Duration::from_secs(10), || async {
        !events_about(&client, "ns", "Job", "batch", "BackoffLimitExceeded")
            .await
            .is_empty()
    })
    .await;
    let failed = &events_about(&client, "ns", "Job", "batch", "BackoffLimitExceeded").await[0];
    assert_eq!(failed.type_, "Warning");
    assert_eq!(
        failed.message,
        "Job has reached the specified backoff limit"
    );
    // Each pod runs a tick and fails the next; its replacement waits 10 s, then 20 s.
    let mut times: Vec<Instant> = seen.lock().unwrap().first_seen.values().copied().collect();
    times.sort();
    assert_eq!(times.len(), 3, "no pod after the job failed");
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert!(
        (11..=13).contains(&gaps[0]),
        "10 s backoff (+ the pod's run): {gaps:?}"
    );
    assert!(
        (21..=23).contains(&gaps[1]),
        "20 s backoff (+ the pod's run): {gaps:?}"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(pods(&client).await.len(), 3, "still no new pod");
    kubelet.abort();
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_active_deadline_fails_a_job_and_deletes_its_pods() {
    let client = LocalClient::new(MemStore::new());
    let mut spec = job(2, 2);
    spec.spec.active_deadline_seconds = Some(30);
    client.create(&spec).await.unwrap();
    let started = Instant::now();
    let running = start_jobs(&client);
    let (_seen, kubelet) = kubelet(client.clone(), None);
    eventually_within("two running", Duration::from_secs(10), || async {
        pods(&client).await.len() == 2
    })
    .await;
    eventually_within("failed", Duration::from_secs(60), || async {
        condition(&client).await.is_some()
    })
    .await;
    let elapsed = started.elapsed();
    // startTime is stored to the second, so the deadline may pass up to a second early.
    assert!(
        elapsed >= Duration::from_secs(29) && elapsed < Duration::from_secs(32),
        "failed at the deadline, {elapsed:?} in"
    );
    assert_eq!(
        condition(&client).await,
        Some(("Failed".into(), "DeadlineExceeded".into()))
    );
    eventually_within("pods deleted", Duration::from_secs(5), || async {
        pods(&client).await.iter().all(|p| !is_active(p))
    })
    .await;
    kubelet.abort();
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_finished_job_and_its_pods_are_deleted_ttl_seconds_after_it_finished() {
    let client = LocalClient::new(MemStore::new());
    let mut with_ttl = job(3, 3);
    with_ttl.spec.ttl_seconds_after_finished = Some(30);
    client.create(&with_ttl).await.unwrap();
    let informers = SharedInformers::new(client.clone());
    let mut set = ControllerSet::new();
    set.add(JobController::controller(&informers));
    set.add(TtlAfterFinishedController::controller(&informers));
    add_garbage_collectors(&mut set, &informers);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(set.run(async move {
        let _ = stopped.await;
    }));
    let (_, kubelet) = kubelet(client.clone(), Some(PodPhase::Succeeded));
    eventually_within("complete", Duration::from_secs(60), || async {
        condition(&client).await.is_some()
    })
    .await;
    let finished = Instant::now();
    assert_eq!(pods(&client).await.len(), 3);

    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(
        client.get::<Job>("ns", "batch").await.is_ok(),
        "kept until its TTL runs out"
    );
    eventually_within("the job gone", Duration::from_secs(60), || async {
        client.get::<Job>("ns", "batch").await.is_err()
    })
    .await;
    assert!(
        finished.elapsed() >= Duration::from_secs(29),
        "deleted after {:?}",
        finished.elapsed()
    );
    assert!(pods(&client).await.is_empty(), "its pods went first");
    kubelet.abort();
    let _ = stop.send(());
    running.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_indexed_job_runs_one_pod_per_index_and_records_completed_indexes() {
    let client = LocalClient::new(MemStore::new());
    let mut indexed = job(4, 2);
    indexed.spec.completion_mode = Some(CompletionMode::Indexed);
    client.create(&indexed).await.unwrap();
    let running = start_jobs(&client);
    let (seen, kubelet) = kubelet(client.clone(), Some(PodPhase::Succeeded));
    eventually_within("complete", Duration::from_secs(60), || async {
        condition(&client).await.is_some()
    })
    .await;
    assert_eq!(
        condition(&client).await,
        Some(("Complete".into(), String::new()))
    );
    let job: Job = client.get("ns", "batch").await.unwrap();
    let status = job.status.unwrap();
    assert_eq!(status.completed_indexes.as_deref(), Some("0-3"));
    assert_eq!(status.succeeded, Some(4));
    let mut indexes: Vec<String> = pods(&client)
        .await
        .iter()
        .map(|p| {
            let index = p.metadata.annotations[COMPLETION_INDEX_ANNOTATION].clone();
            assert!(p.metadata.name.starts_with(&format!("batch-{index}-")));
            let env = &p.spec.containers[0].env;
            assert!(
                    env.iter()
                        .any(|e| e.name == "JOB_COMPLETION_INDEX"
                            && e.value.as_deref() == Some(&index)),
                    "{env:?}"
                );
            index
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2", "3"], "one pod per index");
    assert!(seen.lock().unwrap().max_active <= 2, "parallelism 2");
    kubelet.abort();
    running.stop().await;
}

/// `job` with the user's own selector, `app: batch` (the generated one names the job's uid,
/// which no orphan made beforehand can carry).
fn with_manual_selector(mut job: Job) -> Job {
    job.spec.manual_selector = Some(true);
    job.spec.selector = Some(LabelSelector::match_labels([("app", "batch")]));
    job.spec
        .template
        .metadata
        .labels
        .insert("app".into(), "batch".into());
    job
}

/// Creates `pod` (see [`orphan`] and [`others_pod`]) and puts it in `phase`.
async fn create_in_phase(client: &LocalClient, pod: Pod, phase: PodPhase) -> Pod {
    let mut pod = client.create(&pod).await.unwrap();
    pod.status = Some(PodStatus {
        phase: Some(phase),
        ..PodStatus::default()
    });
    client.update_status(&pod).await.unwrap()
}

async fn pod_named(client: &LocalClient, name: &str) -> Pod {
    client.get("ns", name).await.unwrap()
}

/// The uid of the controller of pod `name`.
async fn controller_uid(client: &LocalClient, name: &str) -> Option<String> {
    pod_named(client, name)
        .await
        .metadata
        .controller_ref()
        .map(|owner| owner.uid.clone())
}

async fn status(client: &LocalClient) -> (Option<i32>, Option<i32>, Option<i32>) {
    let job: Job = client.get("ns", "batch").await.unwrap();
    let status = job.status.unwrap_or_default();
    (status.active, status.succeeded, status.failed)
}

#[tokio::test(start_paused = true)]
async fn a_matching_orphan_that_succeeded_is_adopted_and_counts_toward_completions() {
    let client = LocalClient::new(MemStore::new());
    let leftover = create_in_phase(
        &client,
        orphan(batch_pod(), "leftover"),
        PodPhase::Succeeded,
    )
    .await;
    let created = client
        .create(&with_manual_selector(job(2, 1)))
        .await
        .unwrap();
    let running = start_jobs(&client);
    let (_seen, kubelet) = kubelet(client.clone(), Some(PodPhase::Succeeded));
    eventually_within("complete", Duration::from_secs(60), || async {
        condition(&client).await.is_some()
    })
    .await;
    assert_eq!(
        condition(&client).await,
        Some(("Complete".into(), String::new()))
    );
    assert_eq!(status(&client).await, (Some(0), Some(2), Some(0)));
    let all = pods(&client).await;
    assert_eq!(all.len(), 2, "the orphan's success counted: one pod made");
    let adopted = pod_named(&client, "leftover").await;
    assert_eq!(adopted.metadata.uid, leftover.metadata.uid);
    assert_eq!(
        adopted.metadata.owner_references,
        [OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: "batch".into(),
            uid: created.metadata.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    );
    kubelet.abort();
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pods_of_other_controllers_are_left_alone_and_pods_that_stop_matching_are_released() {
    let client = LocalClient::new(MemStore::new());
    // (No ReplicaSet controller or garbage collector runs: the owner need not exist.)
    let theirs = create_in_phase(
        &client,
        others_pod(batch_pod(), "theirs"),
        PodPhase::Running,
    )
    .await;
    create_in_phase(&client, orphan(batch_pod(), "adoptee"), PodPhase::Running).await;
    let created = client
        .create(&with_manual_selector(job(1, 1)))
        .await
        .unwrap();
    let job_uid = Some(created.metadata.uid.clone());
    // No kubelet: the job's pods stay pending, active.
    let running = start_jobs(&client);

    // The running orphan is adopted and is the job's one active pod: nothing is created.
    eventually("adoptee adopted", || async {
        controller_uid(&client, "adoptee").await == job_uid
    })
    .await;
    eventually("counted", || async {
        status(&client).await == (Some(1), Some(0), Some(0))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(pods(&client).await.len(), 2, "no pod made");
    assert_eq!(
        pod_named(&client, "theirs").await,
        theirs,
        "theirs untouched"
    );

    // Relabelled out of the selector, the adoptee is released; the job makes a pod of its own.
    let mut relabelled = pod_named(&client, "adoptee").await;
    relabelled
        .metadata
        .labels
        .insert("app".into(), "debug".into());
    client.update(&relabelled).await.unwrap();
    eventually("adoptee released", || async {
        pod_named(&client, "adoptee")
            .await
            .metadata
            .owner_references
            .is_empty()
    })
    .await;
    eventually("a pod of its own", || async {
        let all = pods(&client).await;
        all.len() == 3
            && all.iter().any(|p| {
                p.metadata.name.starts_with("batch-")
                    && p.metadata.controller_ref().map(|o| o.uid.clone()) == job_uid
            })
    })
    .await;
    eventually("counted", || async {
        status(&client).await == (Some(1), Some(0), Some(0))
    })
    .await;
    assert_eq!(
        pod_named(&client, "theirs").await,
        theirs,
        "theirs untouched"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_job_being_deleted_adopts_nothing() {
    let client = LocalClient::new(MemStore::new());
    let mut held = with_manual_selector(job(1, 1));
    held.metadata.finalizers = vec!["test.orchestra.dev/hold".into()];
    client.create(&held).await.unwrap();
    let running = start_jobs(&client);
    eventually("its pod", || async { pods(&client).await.len() == 1 }).await;
    // The finalizer holds the job, being deleted; a matching orphan appears meanwhile.
    client
        .delete::<Job>("ns", "batch", &DeleteOptions::default())
        .await
        .unwrap();
    let deleting: Job = client.get("ns", "batch").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    create_in_phase(&client, orphan(batch_pod(), "late"), PodPhase::Running).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        pod_named(&client, "late")
            .await
            .metadata
            .owner_references
            .is_empty(),
        "adopted by a job being deleted"
    );
    assert_eq!(pods(&client).await.len(), 2);
    running.stop().await;
}
