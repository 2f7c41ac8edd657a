//! # `full_cluster`: what an orchestra cluster stands on, today
//!
//! **The full cluster does not exist yet.** The API server, scheduler, controllers, node agents
//! and service proxy arrive with later issues, and this example will grow into the whole
//! cluster as they land. Today it demonstrates, honestly, the one component that exists: the
//! durable store ([`DiskStore`]) that every other component will keep its state in, used the
//! way the API server will use it (`/registry/{kind}/{namespace}/{name}` keys, optimistic
//! concurrency on `mod_revision`, watches, node leases).
//!
//! It opens a store in a temporary directory, then, step by step: creates a few objects,
//! writes a burst of pods from many concurrent writers, watches them arrive in order, binds a
//! pod with compare-and-swap (and sees a stale write refused), lets a node lease expire and its
//! key vanish, compacts history, closes the store and reopens it to show the data survived.
//! Each step checks what it claims; the example prints a timeline and a summary table, and
//! exits non-zero if any step did not do what it claims.
//!
//! ```text
//! cargo run --release --example full_cluster            # the demonstration (a few seconds)
//! cargo run --release --example full_cluster -- --smoke # smaller and faster, for CI
//! ```

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use orchestra::store::{
    CasOutcome, DiskStore, Event, EventKind, RangeRequest, Store, StoreError, StoreExt,
    WatchRequest, WatchStream,
};
use serde_json::json;
use tokio::time::Instant;

/// Command line of the example.
#[derive(Debug, Parser)]
#[command(
    about = "Demonstrates the durable store an orchestra cluster stands on (the cluster components arrive with later issues)."
)]
struct Args {
    /// Small and fast, for CI: fewer pods and a short lease.
    #[arg(long)]
    smoke: bool,
}

/// The sizes of one run.
struct Sizes {
    /// Pods written by the concurrent writers.
    bulk_pods: usize,
    /// Concurrent writers.
    writers: usize,
    /// The node lease's TTL.
    lease_ttl: Duration,
}

impl Sizes {
    fn new(smoke: bool) -> Self {
        if smoke {
            Sizes {
                bulk_pods: 200,
                writers: 16,
                lease_ttl: Duration::from_millis(300),
            }
        } else {
            Sizes {
                bulk_pods: 2_000,
                writers: 64,
                lease_ttl: Duration::from_secs(2),
            }
        }
    }
}

/// The steps, in order, with what each claims.
const STEPS: [(&str, &str); 8] = [
    ("open", "a new store opens empty, at revision 1"),
    (
        "create",
        "objects are created once; a second create is refused",
    ),
    (
        "bulk",
        "concurrent writers' pods are all stored, one revision each",
    ),
    (
        "watch",
        "a prefix watch sees every write once, in revision order",
    ),
    (
        "bind",
        "compare-and-swap binds a pod; a stale write is refused",
    ),
    (
        "lease",
        "a lease that is not renewed expires and takes its key",
    ),
    (
        "compact",
        "compaction drops old revisions and keeps the latest",
    ),
    (
        "reopen",
        "after close and reopen, keys and revisions are intact",
    ),
];

/// Why a step failed.
#[derive(Debug)]
struct Failure(String);

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure(format!("store error: {err}"))
    }
}

/// Fail with a message unless `condition` holds.
fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failure> {
    if condition {
        Ok(())
    } else {
        Err(Failure(message()))
    }
}

/// What happened to one step.
struct Outcome {
    name: &'static str,
    ok: bool,
    millis: f64,
}

/// Prints each step as it ends and remembers it for the summary.
struct Timeline {
    start: Instant,
    outcomes: Vec<Outcome>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            start: Instant::now(),
            outcomes: Vec::new(),
        }
    }

    /// Run one step, print its line, and pass its failure on.
    async fn step(
        &mut self,
        name: &'static str,
        work: impl Future<Output = Result<String, Failure>>,
    ) -> Result<(), Failure> {
        self.step_with(name, async { work.await.map(|detail| ((), detail)) })
            .await
    }

    /// Run one step that also produces a value (the opened store, for example).
    async fn step_with<T>(
        &mut self,
        name: &'static str,
        work: impl Future<Output = Result<(T, String), Failure>>,
    ) -> Result<T, Failure> {
        let began = Instant::now();
        let result = work.await;
        let millis = began.elapsed().as_secs_f64() * 1000.0;
        let at = self.start.elapsed().as_secs_f64() * 1000.0;
        let (ok, text) = match &result {
            Ok((_, detail)) => (true, format!("ok      {detail}")),
            Err(Failure(why)) => (false, format!("FAILED  {why}")),
        };
        println!("[{at:>8.1} ms] {name:<8} {text}");
        self.outcomes.push(Outcome { name, ok, millis });
        result.map(|(value, _)| value)
    }

    /// Print the summary table; true when every step ran and passed.
    fn summary(&self) -> bool {
        println!();
        println!(
            "{:<8}  {:<60}  {:<8}  {:>9}",
            "step", "claim", "result", "ms"
        );
        println!("{}", "-".repeat(91));
        for (name, claim) in STEPS {
            let outcome = self.outcomes.iter().find(|o| o.name == name);
            let (result, millis) = match outcome {
                Some(o) if o.ok => ("ok", format!("{:.1}", o.millis)),
                Some(o) => ("FAILED", format!("{:.1}", o.millis)),
                None => ("not run", String::new()),
            };
            println!("{name:<8}  {claim:<60}  {result:<8}  {millis:>9}");
        }
        let passed = self.outcomes.iter().filter(|o| o.ok).count();
        let all = passed == STEPS.len();
        println!();
        if all {
            println!(
                "all {} steps did what they claim ({:.0} ms in total)",
                STEPS.len(),
                self.start.elapsed().as_secs_f64() * 1000.0
            );
        } else {
            println!("{passed} of {} steps passed", STEPS.len());
        }
        all
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let sizes = Sizes::new(args.smoke);
    println!(
        "orchestra full_cluster{}",
        if args.smoke { " (smoke)" } else { "" }
    );
    println!(
        "The cluster components (API server, scheduler, controllers, node agents, proxy) arrive"
    );
    println!("with later issues; this run demonstrates the durable store they will stand on.");
    let tmp = match tempfile::tempdir() {
        Ok(tmp) => tmp,
        Err(err) => {
            eprintln!("error: cannot create a temporary directory: {err}");
            return ExitCode::FAILURE;
        }
    };
    let dir = tmp.path().join("data");
    println!("data directory: {}", dir.display());
    println!();
    let mut timeline = Timeline::new();
    if let Err(Failure(why)) = demo(&dir, &sizes, &mut timeline).await {
        eprintln!("error: {why}");
    }
    if timeline.summary() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The demonstration; stops at the first step that fails.
async fn demo(dir: &Path, sizes: &Sizes, timeline: &mut Timeline) -> Result<(), Failure> {
    let store = timeline.step_with("open", open_step(dir)).await?;
    // Watch from the next revision, before anything is written.
    let mut pods_watch = store.watch(WatchRequest::prefix("/registry/pods/")).await?;
    timeline.step("create", create_step(&store)).await?;
    timeline.step("bulk", bulk_step(&store, sizes)).await?;
    timeline
        .step("watch", watch_step(&mut pods_watch, 3 + sizes.bulk_pods))
        .await?;
    drop(pods_watch);
    timeline.step("bind", bind_step(&store)).await?;
    timeline
        .step("lease", lease_step(&store, sizes.lease_ttl))
        .await?;
    timeline.step("compact", compact_step(&store)).await?;
    timeline
        .step("reopen", reopen_step(store, dir.to_path_buf()))
        .await?;
    Ok(())
}

/// The key of an object, as the API server will lay it out.
fn object_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("/registry/{kind}/{ns}/{name}"),
        None => format!("/registry/{kind}/{name}"),
    }
}

/// A pod manifest, as JSON bytes.
fn pod(name: &str, node: Option<&str>) -> Bytes {
    let value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": "default", "labels": { "app": "web" } },
        "spec": { "nodeName": node, "containers": [{ "name": "web", "image": "web:1.0" }] },
        "status": { "phase": if node.is_some() { "Scheduled" } else { "Pending" } },
    });
    Bytes::from(value.to_string())
}

async fn open_step(dir: &Path) -> Result<(DiskStore, String), Failure> {
    let store = DiskStore::open(dir).await?;
    let status = store.status().await?;
    check(status.revision == 1, || {
        format!("a new store is at revision {}, expected 1", status.revision)
    })?;
    let detail = format!("opened an empty store at revision {}", status.revision);
    Ok((store, detail))
}

async fn create_step(store: &DiskStore) -> Result<String, Failure> {
    let namespace =
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "default" } });
    let node = json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "node-1" }, "status": { "conditions": [{ "type": "Ready", "status": "True" }] } });
    let mut objects = vec![
        (
            object_key("namespaces", None, "default"),
            Bytes::from(namespace.to_string()),
        ),
        (
            object_key("nodes", None, "node-1"),
            Bytes::from(node.to_string()),
        ),
    ];
    for name in ["web-1", "web-2", "web-3"] {
        objects.push((object_key("pods", Some("default"), name), pod(name, None)));
    }
    let mut revisions = Vec::new();
    for (key, value) in &objects {
        match store.create(key.clone(), value.clone()).await? {
            CasOutcome::Written(rev) => revisions.push(rev),
            CasOutcome::Conflict(_) => {
                return Err(Failure(format!("{key} already existed in a new store")));
            }
        }
    }
    let again = store
        .create(objects[2].0.clone(), pod("web-1", None))
        .await?;
    check(matches!(again, CasOutcome::Conflict(Some(_))), || {
        format!("a second create of web-1 was not refused: {again:?}")
    })?;
    let first = revisions.first().copied().unwrap_or_default();
    let last = revisions.last().copied().unwrap_or_default();
    check(last - first + 1 == objects.len() as i64, || {
        format!("revisions {revisions:?} are not one per create")
    })?;
    Ok(format!(
        "namespace default, node node-1 and pods web-1..3 at revisions {first}..{last}; a second create of web-1 was refused"
    ))
}

async fn bulk_step(store: &DiskStore, sizes: &Sizes) -> Result<String, Failure> {
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..sizes.writers {
        let store = store.clone();
        let (pods, writers_n) = (sizes.bulk_pods, sizes.writers);
        writers.spawn(async move {
            let mut revisions = Vec::new();
            for i in (writer..pods).step_by(writers_n) {
                let name = format!("bulk-{i:05}");
                match store
                    .create(object_key("pods", Some("default"), &name), pod(&name, None))
                    .await?
                {
                    CasOutcome::Written(rev) => revisions.push(rev),
                    CasOutcome::Conflict(_) => {
                        return Err(Failure(format!("pod {name} already existed")));
                    }
                }
            }
            Ok::<_, Failure>(revisions)
        });
    }
    let mut revisions = Vec::with_capacity(sizes.bulk_pods);
    while let Some(joined) = writers.join_next().await {
        revisions.extend(joined.map_err(|e| Failure(format!("a writer task failed: {e}")))??);
    }
    let elapsed = started.elapsed();
    let distinct: HashSet<_> = revisions.iter().collect();
    check(distinct.len() == sizes.bulk_pods, || {
        format!(
            "{} pods got {} distinct revisions",
            sizes.bulk_pods,
            distinct.len()
        )
    })?;
    let listed = store
        .range(RangeRequest::prefix("/registry/pods/").count_only())
        .await?;
    check(listed.count == 3 + sizes.bulk_pods, || {
        format!(
            "listing found {} pods, expected {}",
            listed.count,
            3 + sizes.bulk_pods
        )
    })?;
    let per_sec = sizes.bulk_pods as f64 / elapsed.as_secs_f64();
    Ok(format!(
        "{} pods from {} concurrent writers in {:.0} ms ({per_sec:.0} durable writes/s; concurrent writes share a commit)",
        sizes.bulk_pods,
        sizes.writers,
        elapsed.as_secs_f64() * 1000.0
    ))
}

/// Collect `want` events from a watch, waiting at most `limit`.
async fn collect_events(
    watch: &mut WatchStream,
    want: usize,
    limit: Duration,
) -> Result<Vec<Event>, Failure> {
    let mut events = Vec::with_capacity(want);
    let deadline = Instant::now() + limit;
    while events.len() < want {
        let next = tokio::time::timeout_at(deadline, watch.next())
            .await
            .map_err(|_| {
                Failure(format!(
                    "the watch delivered {} of {want} events within {limit:?}",
                    events.len()
                ))
            })?;
        match next {
            Some(resp) => events.extend(resp?.events),
            None => {
                return Err(Failure(format!(
                    "the watch ended after {} of {want} events",
                    events.len()
                )));
            }
        }
    }
    Ok(events)
}

async fn watch_step(watch: &mut WatchStream, want: usize) -> Result<String, Failure> {
    let events = collect_events(watch, want, Duration::from_secs(10)).await?;
    check(events.len() == want, || {
        format!(
            "the watch delivered {} events, expected {want}",
            events.len()
        )
    })?;
    check(events.iter().all(|e| e.kind == EventKind::Put), || {
        "the watch delivered a delete nobody made".into()
    })?;
    let in_order = events
        .windows(2)
        .all(|w| w[0].kv.mod_revision < w[1].kv.mod_revision);
    check(in_order, || {
        "the watch delivered events out of revision order".into()
    })?;
    let keys: HashSet<&Bytes> = events.iter().map(|e| &e.kv.key).collect();
    check(keys.len() == want, || {
        format!(
            "the watch delivered {} distinct pods of {want} events",
            keys.len()
        )
    })?;
    let (first, last) = (events[0].kv.mod_revision, events[want - 1].kv.mod_revision);
    Ok(format!(
        "{want} pod events, revisions {first}..{last}, each once and in order"
    ))
}

async fn bind_step(store: &DiskStore) -> Result<String, Failure> {
    let key = object_key("pods", Some("default"), "web-1");
    let Some(current) = store.get(key.clone()).await? else {
        return Err(Failure(format!("{key} is missing")));
    };
    // The scheduler's binder reads the pod and writes spec.nodeName, guarded by the
    // resourceVersion (mod_revision) it read.
    let read_at = current.mod_revision;
    let bound = store
        .update_if(key.clone(), pod("web-1", Some("node-1")), read_at)
        .await?;
    let CasOutcome::Written(bound_at) = bound else {
        return Err(Failure(format!(
            "binding web-1 at resourceVersion {read_at} was refused: {bound:?}"
        )));
    };
    // A second binder that read the same old version must lose.
    let stale = store
        .update_if(key.clone(), pod("web-1", Some("node-2")), read_at)
        .await?;
    let CasOutcome::Conflict(Some(seen)) = stale else {
        return Err(Failure(format!(
            "a write at the stale resourceVersion {read_at} was not refused: {stale:?}"
        )));
    };
    check(seen.mod_revision == bound_at, || {
        format!(
            "the conflict reported revision {}, expected {bound_at}",
            seen.mod_revision
        )
    })?;
    let stored = store
        .get(key.clone())
        .await?
        .map(|kv| kv.value)
        .unwrap_or_default();
    check(stored.windows(8).any(|w| w == b"\"node-1\""), || {
        "web-1 is not bound to node-1".into()
    })?;
    Ok(format!(
        "web-1 bound to node-1 at revision {bound_at} (read at {read_at}); a stale bind to node-2 was refused"
    ))
}

async fn lease_step(store: &DiskStore, ttl: Duration) -> Result<String, Failure> {
    let key = "/registry/leases/kube-node-lease/node-1";
    let lease = store.lease_grant(ttl).await?;
    let mut watch = store.watch(WatchRequest::key(key)).await?;
    let granted = Instant::now();
    let holder = json!({ "kind": "Lease", "metadata": { "name": "node-1", "namespace": "kube-node-lease" }, "spec": { "holderIdentity": "node-1" } });
    store.put_with_lease(key, holder.to_string(), lease).await?;
    check(store.get(key).await?.is_some(), || {
        format!("{key} is missing right after the put")
    })?;
    // Nobody renews the lease: the store must revoke it and delete the key.
    let events = collect_events(&mut watch, 2, ttl * 5 + Duration::from_secs(2)).await?;
    let expired_after = granted.elapsed();
    check(
        events[0].kind == EventKind::Put && events[1].kind == EventKind::Delete,
        || {
            format!(
                "expected a put then a delete of {key}, got {:?}",
                events.iter().map(|e| e.kind).collect::<Vec<_>>()
            )
        },
    )?;
    check(expired_after >= ttl, || {
        format!("the key vanished after {expired_after:?}, before the TTL of {ttl:?}")
    })?;
    check(store.get(key).await?.is_none(), || {
        format!("{key} survived its lease")
    })?;
    let gone = store.lease_time_to_live(lease).await;
    check(matches!(gone, Err(StoreError::LeaseNotFound(_))), || {
        format!("the expired lease is still there: {gone:?}")
    })?;
    Ok(format!(
        "lease {lease} (TTL {} ms) expired after {} ms; the watch saw {key} deleted at revision {}",
        ttl.as_millis(),
        expired_after.as_millis(),
        events[1].kv.mod_revision
    ))
}

async fn compact_step(store: &DiskStore) -> Result<String, Failure> {
    let before = store.status().await?;
    let old = 2; // the namespace's creation
    let at = before.revision;
    store.compact(at).await?;
    let after = store.status().await?;
    check(after.compact_revision == at, || {
        format!(
            "compact revision is {}, expected {at}",
            after.compact_revision
        )
    })?;
    let old_read = store
        .range(RangeRequest::prefix("/registry/").at_revision(old))
        .await;
    check(
        matches!(old_read, Err(StoreError::Compacted { .. })),
        || format!("a read at revision {old} after compaction gave {old_read:?}"),
    )?;
    let old_watch = store
        .watch(WatchRequest::prefix("/registry/").from_revision(old))
        .await;
    check(
        matches!(old_watch, Err(StoreError::Compacted { .. })),
        || "a watch from a compacted revision was not refused".into(),
    )?;
    let latest = store
        .range(RangeRequest::prefix("/registry/pods/").count_only())
        .await?;
    check(latest.count > 0, || {
        "the latest pods are gone after compaction".into()
    })?;
    Ok(format!(
        "compacted at revision {at}: reads and watches at revision {old} now fail with Compacted, the latest {} pods remain",
        latest.count
    ))
}

async fn reopen_step(store: DiskStore, dir: PathBuf) -> Result<String, Failure> {
    let before_status = store.status().await?;
    let before = store.range(RangeRequest::prefix("/registry/")).await?.kvs;
    drop(store);
    let store = DiskStore::open(&dir).await?;
    let after_status = store.status().await?;
    let after = store.range(RangeRequest::prefix("/registry/")).await?.kvs;
    check(after_status.revision == before_status.revision, || {
        format!(
            "revision {} after reopening, {} before",
            after_status.revision, before_status.revision
        )
    })?;
    check(
        after_status.compact_revision == before_status.compact_revision,
        || {
            format!(
                "compact revision {} after reopening, {} before",
                after_status.compact_revision, before_status.compact_revision
            )
        },
    )?;
    check(after == before, || {
        format!(
            "{} keys after reopening differ from the {} before",
            after.len(),
            before.len()
        )
    })?;
    let next = store
        .put(
            object_key("pods", Some("default"), "after-reopen"),
            pod("after-reopen", None),
        )
        .await?;
    check(next == before_status.revision + 1, || {
        format!(
            "the first write after reopening got revision {next}, expected {}",
            before_status.revision + 1
        )
    })?;
    Ok(format!(
        "reopened at revision {}: all {} keys, their revisions and the compact point are intact; the next write got revision {next} ({} KiB on disk)",
        after_status.revision,
        after.len(),
        after_status.db_size / 1024
    ))
}
