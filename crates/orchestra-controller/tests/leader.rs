//! Leader election over LocalClient in paused time: two candidates, never both acting; a
//! killed leader replaced within the lease duration; a leader cut off from the API stops
//! before its lease expires; a released lease taken over at once.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestra_api::Client;
use orchestra_api::LocalClient;
use orchestra_api::resources::Lease;
use orchestra_controller::leader::{LeaderElectionConfig, LeaderElector};
use orchestra_store::MemStore;
use support::flaky_client;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const LEASE: Duration = Duration::from_secs(15);
const RENEW: Duration = Duration::from_secs(10);
const RETRY: Duration = Duration::from_secs(2);

/// Who acts now, and every start and stop of acting, for the "never both" check.
#[derive(Clone, Default)]
struct Stage {
    inner: Arc<Mutex<StageLog>>,
}

#[derive(Default)]
struct StageLog {
    acting: Option<&'static str>,
    /// (who, started, stopped)
    terms: Vec<(&'static str, Instant, Option<Instant>)>,
    overlaps: Vec<String>,
}

/// Clears the stage when the leading future ends or is dropped.
struct Acting {
    stage: Stage,
    who: &'static str,
}

impl Stage {
    fn enter(&self, who: &'static str) -> Acting {
        let mut log = self.inner.lock().unwrap();
        if let Some(other) = log.acting {
            log.overlaps
                .push(format!("{who} started acting while {other} acts"));
        }
        log.acting = Some(who);
        log.terms.push((who, Instant::now(), None));
        Acting {
            stage: self.clone(),
            who,
        }
    }

    fn leader(&self) -> Option<&'static str> {
        self.inner.lock().unwrap().acting
    }

    fn terms(&self) -> Vec<(&'static str, Instant, Option<Instant>)> {
        self.inner.lock().unwrap().terms.clone()
    }

    fn assert_never_both(&self) {
        let log = self.inner.lock().unwrap();
        assert!(log.overlaps.is_empty(), "{:?}", log.overlaps);
    }
}

impl Drop for Acting {
    fn drop(&mut self) {
        let mut log = self.stage.inner.lock().unwrap();
        if log.acting == Some(self.who) {
            log.acting = None;
        }
        if let Some(term) = log
            .terms
            .iter_mut()
            .rev()
            .find(|(who, _, end)| *who == self.who && end.is_none())
        {
            term.2 = Some(Instant::now());
        }
    }
}

struct Candidate {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn candidate<C: Client>(client: C, who: &'static str, stage: &Stage) -> Candidate {
    let config = LeaderElectionConfig::new("kube-system", "controller-manager", who);
    assert_eq!(
        (
            config.lease_duration,
            config.renew_deadline,
            config.retry_period
        ),
        (LEASE, RENEW, RETRY),
        "the defaults"
    );
    let elector = LeaderElector::new(client, config).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let stage = stage.clone();
    let task = tokio::spawn(elector.run(
        async move {
            let _ = stopped.await;
        },
        move |leadership| {
            let stage = stage.clone();
            async move {
                let _acting = stage.enter(who);
                leadership.lost().await;
            }
        },
    ));
    Candidate { stop, task }
}

async fn wait_for_leader(stage: &Stage, who: &'static str, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    while stage.leader() != Some(who) {
        assert!(
            Instant::now() < deadline,
            "{who} did not lead within {limit:?} (leader: {:?})",
            stage.leader()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Instant::now()
}

#[tokio::test(start_paused = true)]
async fn one_of_two_leads_and_the_other_takes_over_within_the_lease_when_it_is_killed() {
    let client = LocalClient::new(MemStore::new());
    let stage = Stage::default();
    let a = candidate(client.clone(), "a", &stage);
    wait_for_leader(&stage, "a", Duration::from_secs(1)).await;
    let b = candidate(client.clone(), "b", &stage);
    // A minute of renewals: a keeps the lease, b never acts.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(stage.leader(), Some("a"));
    let lease: Lease = client
        .get("kube-system", "controller-manager")
        .await
        .unwrap();
    assert_eq!(lease.spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(lease.spec.lease_duration_seconds, Some(15));
    assert_eq!(lease.spec.lease_transitions, Some(0));

    // Killed: no release, no more renewals.
    a.task.abort();
    let _ = a.task.await;
    let killed = Instant::now();
    let took_over = wait_for_leader(&stage, "b", LEASE + 2 * RETRY).await;
    // Not before the lease could expire: a renewed at most one retry period before it died.
    assert!(
        took_over >= killed + LEASE - RETRY,
        "{:?}",
        took_over - killed
    );
    let lease: Lease = client
        .get("kube-system", "controller-manager")
        .await
        .unwrap();
    assert_eq!(lease.spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(lease.spec.lease_transitions, Some(1));
    stage.assert_never_both();
    let _ = b.stop.send(());
    b.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_stops_before_its_lease_expires() {
    let store = LocalClient::new(MemStore::new());
    let a_client = flaky_client(store.clone());
    let stage = Stage::default();
    let a = candidate(a_client.clone(), "a", &stage);
    wait_for_leader(&stage, "a", Duration::from_secs(1)).await;
    let b = candidate(store.clone(), "b", &stage);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(stage.leader(), Some("a"));

    // a is cut off from the API: its last successful renewal started before this moment.
    a_client.hook.set_down(true);
    let cut = Instant::now();
    let took_over = wait_for_leader(&stage, "b", LEASE + 2 * RETRY).await;
    let terms = stage.terms();
    let (_, _, a_stopped) = terms
        .iter()
        .find(|(who, _, _)| *who == "a")
        .copied()
        .unwrap();
    let a_stopped = a_stopped.expect("a stopped acting");
    // Within its renew deadline of its last renewal, so well before the lease expires.
    assert!(a_stopped <= cut + RENEW, "{:?}", a_stopped - cut);
    assert!(a_stopped < took_over);
    stage.assert_never_both();

    // Reachable again, a is a candidate and does not disturb b.
    a_client.hook.set_down(false);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(stage.leader(), Some("b"));
    stage.assert_never_both();
    let _ = a.stop.send(());
    a.task.await.unwrap();
    let _ = b.stop.send(());
    b.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_shuts_down_releases_the_lease_and_the_successor_takes_it_at_once() {
    let client = LocalClient::new(MemStore::new());
    let stage = Stage::default();
    let a = candidate(client.clone(), "a", &stage);
    wait_for_leader(&stage, "a", Duration::from_secs(1)).await;
    let b = candidate(client.clone(), "b", &stage);
    tokio::time::sleep(Duration::from_secs(30)).await;

    let _ = a.stop.send(());
    a.task.await.unwrap();
    assert_eq!(stage.leader(), None);
    let released: Lease = client
        .get("kube-system", "controller-manager")
        .await
        .unwrap();
    assert_eq!(released.spec.holder_identity, None);
    // b sees the free lease at its next attempt.
    wait_for_leader(&stage, "b", RETRY + Duration::from_millis(100)).await;
    stage.assert_never_both();
    let _ = b.stop.send(());
    b.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stale_leader_cannot_overwrite_its_successors_record() {
    // A lease taken by "b" after "a" read it: a's write carries the old resourceVersion.
    let client = LocalClient::new(MemStore::new());
    let stage = Stage::default();
    let a = candidate(client.clone(), "a", &stage);
    wait_for_leader(&stage, "a", Duration::from_secs(1)).await;
    let mut lease: Lease = client
        .get("kube-system", "controller-manager")
        .await
        .unwrap();
    let stale = lease.clone();
    lease.spec.holder_identity = Some("b".into());
    client.update(&lease).await.unwrap();
    let mut clobber = stale;
    clobber.spec.holder_identity = Some("a".into());
    assert!(client.update(&clobber).await.unwrap_err().is_conflict());
    // a sees b's record at its next renewal and stops at once.
    tokio::time::sleep(RETRY + Duration::from_millis(100)).await;
    assert_eq!(stage.leader(), None);
    let _ = a.stop.send(());
    a.task.await.unwrap();
    let lease: Lease = client
        .get("kube-system", "controller-manager")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.holder_identity.as_deref(),
        Some("b"),
        "a released nothing it did not hold"
    );
}

#[test]
fn durations_that_leave_no_time_to_stop_are_refused() {
    let mut config = LeaderElectionConfig::new("kube-system", "m", "a");
    config.validate().unwrap();
    config.renew_deadline = config.lease_duration;
    assert!(config.validate().is_err());
    let mut config = LeaderElectionConfig::new("kube-system", "m", "a");
    config.retry_period = config.renew_deadline;
    assert!(config.validate().is_err());
    assert!(
        LeaderElectionConfig::new("kube-system", "m", "")
            .validate()
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn of_two_controller_managers_only_the_leader_reconciles_and_the_other_takes_over() {
    use orchestra_api::registry::ListOptions;
    use orchestra_api::resources::{Deployment, Pod};
    use orchestra_controller::manager::ControllerManager;

    let client = LocalClient::new(MemStore::new());
    let config = |id: &str| LeaderElectionConfig::new("kube-system", "controller-manager", id);
    let a = ControllerManager::new(client.clone())
        .leader_election(config("a"))
        .unwrap();
    let a_metrics = a.metrics();
    let a_task = tokio::spawn(a.run(futures::future::pending()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let b = ControllerManager::new(client.clone())
        .leader_election(config("b"))
        .unwrap();
    let b_metrics = b.metrics();
    let (stop_b, stopped_b) = oneshot::channel::<()>();
    let b_task = tokio::spawn(b.run(async move {
        let _ = stopped_b.await;
    }));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(a_metrics.render().contains("controller=\"replicaset\""));
    assert!(b_metrics.render().is_empty(), "b runs no controller");

    let mut deployment = Deployment {
        metadata: orchestra_api::ObjectMeta::namespaced("ns", "web"),
        ..Deployment::default()
    };
    deployment.spec.replicas = Some(2);
    deployment.spec.selector = orchestra_api::LabelSelector::match_labels([("app", "web")]);
    deployment.spec.template.metadata.labels = [("app".to_owned(), "web".to_owned())].into();
    deployment.spec.template.spec = orchestra_api::testing::pod("ns", "x", "web").spec;
    client.create(&deployment).await.unwrap();
    let pods = || async {
        client
            .list::<Pod>(Some("ns"), &ListOptions::default())
            .await
            .unwrap()
            .items
            .len()
    };
    support::eventually("a's controllers create two pods", || async {
        pods().await == 2
    })
    .await;

    // a dies (its controllers with it); b takes over within the lease and reconciles.
    a_task.abort();
    let _ = a_task.await;
    let died = Instant::now();
    let mut scaled: Deployment = client.get("ns", "web").await.unwrap();
    scaled.spec.replicas = Some(3);
    client.update(&scaled).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(pods().await, 2, "nobody acts while a's lease lasts");
    support::eventually_within("b scales to three", LEASE + 2 * RETRY, || async {
        pods().await == 3
    })
    .await;
    assert!(Instant::now() >= died + LEASE - RETRY);
    assert!(b_metrics.render().contains("controller=\"replicaset\""));
    let _ = stop_b.send(());
    b_task.await.unwrap();
}
