//! `rollout status|undo|history|pause|resume DEPLOYMENT` (`undo` and `history` also for
//! `daemonset/NAME` and `statefulset/NAME`, `status` for `statefulset/NAME`) and
//! `scale KIND/NAME --replicas N`.
//!
//! The decisions (what a rollout's status says, which template an undo restores) are
//! orchestra-controller's pure functions; this module reads, writes and prints.

use std::io::Write;
use std::time::Duration;

use orchestra::api::resources::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use orchestra::api::{ApiError, Client, Resource};
use orchestra::controller::controllers::deployment::plan::REVISION_ANNOTATION;
use orchestra::controller::controllers::deployment::progress::{RolloutStatus, rollout_status};
use orchestra::controller::controllers::deployment::rollback::{Rollback, rollback};
use orchestra::controller::controllers::history::{
    RevisionRollback, Revisioned, owned_by, rollback as revision_rollback,
};
use orchestra::controller::controllers::stateful_set::rollout::rollout_status as stateful_set_status;

use super::{CtlError, Kind, Scope};

/// How often `rollout status` looks again while it waits.
const POLL: Duration = Duration::from_millis(500);

/// Splits `KIND/NAME` (or a bare `NAME`, taken as `default_kind`).
pub fn parse_target(text: &str, default_kind: Option<Kind>) -> Result<(Kind, String), CtlError> {
    match text.split_once('/') {
        Some((kind, name)) if !name.is_empty() => Ok((Kind::parse(kind)?, name.to_owned())),
        None if !text.is_empty() => match default_kind {
            Some(kind) => Ok((kind, text.to_owned())),
            None => Err(CtlError::Usage(format!(
                "{text:?}: name the object as KIND/NAME, e.g. deployment/web"
            ))),
        },
        _ => Err(CtlError::Usage(format!(
            "{text:?}: name the object as KIND/NAME, e.g. deployment/web"
        ))),
    }
}

fn deployment_name(text: &str) -> Result<String, CtlError> {
    match parse_target(text, Some(Kind::Deployment))? {
        (Kind::Deployment, name) => Ok(name),
        (kind, _) => Err(CtlError::Usage(format!(
            "rollout works on deployments, not {kind}s"
        ))),
    }
}

async fn get_deployment<C: Client>(
    client: &C,
    scope: &Scope,
    name: &str,
) -> Result<Deployment, CtlError> {
    client
        .get::<Deployment>(scope.namespace(), name)
        .await
        .map_err(|e| CtlError::api(format!("reading deployment {name:?}"), e))
}

/// `scale KIND/NAME --replicas N` (deployments, replica sets and stateful sets).
pub async fn scale<C: Client>(
    client: &C,
    target: &str,
    replicas: i32,
    scope: &Scope,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    if replicas < 0 {
        return Err(CtlError::Usage(format!(
            "--replicas must not be negative (it is {replicas})"
        )));
    }
    let (kind, name) = parse_target(target, None)?;
    let ns = scope.namespace();
    let context = || format!("scaling {kind} {name:?}");
    let result = match kind {
        Kind::Deployment => {
            set_replicas(client, ns, &name, |d: &mut Deployment| {
                d.spec.replicas = Some(replicas)
            })
            .await
        }
        Kind::ReplicaSet => {
            set_replicas(client, ns, &name, |rs: &mut ReplicaSet| {
                rs.spec.replicas = Some(replicas)
            })
            .await
        }
        Kind::StatefulSet => {
            set_replicas(client, ns, &name, |sts: &mut StatefulSet| {
                sts.spec.replicas = Some(replicas)
            })
            .await
        }
        other => {
            return Err(CtlError::Usage(format!(
                "cannot scale {other}s (deployments, replicasets and statefulsets can be scaled)"
            )));
        }
    };
    result.map_err(|e| CtlError::api(context(), e))?;
    writeln!(out, "{kind}/{name} scaled")?;
    Ok(())
}

/// Reads `NS/NAME`, sets its replicas with `set` and writes it back.
async fn set_replicas<C: Client, R: Resource>(
    client: &C,
    ns: &str,
    name: &str,
    set: impl FnOnce(&mut R),
) -> Result<(), ApiError> {
    let mut object: R = client.get(ns, name).await?;
    set(&mut object);
    client.update(&object).await.map(drop)
}

/// `rollout pause|resume DEPLOYMENT`.
pub async fn set_paused<C: Client>(
    client: &C,
    target: &str,
    paused: bool,
    scope: &Scope,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let name = deployment_name(target)?;
    let mut d = get_deployment(client, scope, &name).await?;
    let verb = if paused { "paused" } else { "resumed" };
    if d.spec.paused == paused {
        let state = if paused { "paused" } else { "not paused" };
        return Err(CtlError::Usage(format!(
            "deployment {name:?} is already {state}"
        )));
    }
    d.spec.paused = paused;
    client
        .update(&d)
        .await
        .map_err(|e| CtlError::api(format!("updating deployment {name:?}"), e))?;
    writeln!(out, "deployment/{name} {verb}")?;
    Ok(())
}

/// The `change-cause` annotation, shown by `rollout history`.
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// What `undo` and `history` work on.
enum Rollable {
    Deployment(String),
    DaemonSet(String),
    StatefulSet(String),
}

fn rollable(text: &str) -> Result<Rollable, CtlError> {
    match parse_target(text, Some(Kind::Deployment))? {
        (Kind::Deployment, name) => Ok(Rollable::Deployment(name)),
        (Kind::DaemonSet, name) => Ok(Rollable::DaemonSet(name)),
        (Kind::StatefulSet, name) => Ok(Rollable::StatefulSet(name)),
        (kind, _) => Err(CtlError::Usage(format!(
            "rollout undo and history work on deployments, daemonsets and statefulsets, not {kind}s"
        ))),
    }
}

/// The replica sets `d` controls.
async fn owned_sets<C: Client>(
    client: &C,
    scope: &Scope,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>, CtlError> {
    let sets = client
        .list::<ReplicaSet>(Some(scope.namespace()), &Default::default())
        .await
        .map_err(|e| CtlError::api("listing replica sets", e))?;
    Ok(sets
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .controller_ref()
                .is_some_and(|o| o.uid == d.metadata.uid)
        })
        .collect())
}

/// The daemon or stateful set `name` and the ControllerRevisions it controls.
async fn revision_history<C: Client, K: Revisioned>(
    client: &C,
    scope: &Scope,
    name: &str,
) -> Result<(K, Vec<ControllerRevision>), CtlError> {
    let owner: K = client
        .get(scope.namespace(), name)
        .await
        .map_err(|e| CtlError::api(format!("reading {} {name:?}", K::KIND.to_lowercase()), e))?;
    let all = client
        .list::<ControllerRevision>(Some(scope.namespace()), &Default::default())
        .await
        .map_err(|e| CtlError::api("listing controller revisions", e))?;
    let owned = owned_by(&owner, &all.items).cloned().collect();
    Ok((owner, owned))
}

/// The revisions of a daemon or stateful set, as `rollout history` rows.
async fn revision_rows<C: Client, K: Revisioned>(
    client: &C,
    scope: &Scope,
    name: &str,
) -> Result<(String, Vec<(i64, Option<String>)>), CtlError> {
    let (_, revisions) = revision_history::<C, K>(client, scope, name).await?;
    let rows = revisions
        .into_iter()
        .map(|r| {
            (
                r.revision,
                r.metadata.annotations.get(CHANGE_CAUSE).cloned(),
            )
        })
        .collect();
    Ok((format!("{}.apps/{name}", K::KIND.to_lowercase()), rows))
}

/// `rollout history KIND/NAME`: the revisions, oldest first, with their change causes.
pub async fn history<C: Client>(
    client: &C,
    target: &str,
    scope: &Scope,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let (title, mut rows): (String, Vec<(i64, Option<String>)>) = match rollable(target)? {
        Rollable::Deployment(name) => {
            let d = get_deployment(client, scope, &name).await?;
            let rows = owned_sets(client, scope, &d)
                .await?
                .into_iter()
                .filter_map(|rs| {
                    let annotations = &rs.metadata.annotations;
                    let revision = annotations.get(REVISION_ANNOTATION)?.parse().ok()?;
                    Some((revision, annotations.get(CHANGE_CAUSE).cloned()))
                })
                .collect();
            (format!("deployment.apps/{name}"), rows)
        }
        Rollable::DaemonSet(name) => revision_rows::<C, DaemonSet>(client, scope, &name).await?,
        Rollable::StatefulSet(name) => {
            revision_rows::<C, StatefulSet>(client, scope, &name).await?
        }
    };
    rows.sort();
    writeln!(out, "{title}")?;
    writeln!(out, "REVISION  CHANGE-CAUSE")?;
    for (revision, cause) in rows {
        writeln!(
            out,
            "{revision:<10}{}",
            cause.as_deref().unwrap_or("<none>")
        )?;
    }
    Ok(())
}

/// `rollout undo KIND/NAME [--to-revision N]` (deployments, daemon sets and stateful sets).
pub async fn undo<C: Client>(
    client: &C,
    target: &str,
    to_revision: Option<i64>,
    scope: &Scope,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let name = match rollable(target)? {
        Rollable::Deployment(name) => name,
        Rollable::DaemonSet(name) => {
            return undo_revisioned(
                client,
                &name,
                to_revision,
                scope,
                out,
                |ds: &mut DaemonSet| &mut ds.spec.template,
            )
            .await;
        }
        Rollable::StatefulSet(name) => {
            return undo_revisioned(
                client,
                &name,
                to_revision,
                scope,
                out,
                |sts: &mut StatefulSet| &mut sts.spec.template,
            )
            .await;
        }
    };
    let mut d = get_deployment(client, scope, &name).await?;
    let owned = owned_sets(client, scope, &d).await?;
    match rollback(&d, &owned, to_revision).map_err(|e| CtlError::Usage(e.to_string()))? {
        Rollback::AlreadyThere { revision } => writeln!(
            out,
            "deployment/{name} skipped rollback (current template already matches revision {revision})"
        )?,
        Rollback::To { template, .. } => {
            d.spec.template = *template;
            client
                .update(&d)
                .await
                .map_err(|e| CtlError::api(format!("rolling back deployment {name:?}"), e))?;
            writeln!(out, "deployment/{name} rolled back")?;
        }
    }
    Ok(())
}

/// `rollout undo daemonset/NAME|statefulset/NAME [--to-revision N]`: the revision's template
/// goes back into the set (through `template`); the controller then renumbers that revision
/// to the top and rolls it out.
async fn undo_revisioned<C: Client, K: Revisioned + Clone>(
    client: &C,
    name: &str,
    to_revision: Option<i64>,
    scope: &Scope,
    out: &mut dyn Write,
    template: impl Fn(&mut K) -> &mut orchestra::api::resources::PodTemplateSpec,
) -> Result<(), CtlError> {
    let kind = K::KIND.to_lowercase();
    let (mut owner, revisions) = revision_history::<C, K>(client, scope, name).await?;
    match revision_rollback(&owner, &revisions, to_revision)
        .map_err(|e| CtlError::Usage(e.to_string()))?
    {
        RevisionRollback::AlreadyThere { revision } => writeln!(
            out,
            "{kind}.apps/{name} skipped rollback (current template already matches revision {revision})"
        )?,
        RevisionRollback::To {
            template: chosen, ..
        } => {
            *template(&mut owner) = *chosen;
            client
                .update(&owner)
                .await
                .map_err(|e| CtlError::api(format!("rolling back {kind} {name:?}"), e))?;
            writeln!(out, "{kind}.apps/{name} rolled back")?;
        }
    }
    Ok(())
}

/// `rollout status DEPLOYMENT|statefulset/NAME [--watch=false] [--timeout SECONDS]`: prints
/// each new state of the rollout until it is done (or once, without watching); a rollout past
/// its progress deadline (or of an `OnDelete` stateful set), or still going at the timeout, is
/// an error.
pub async fn status<C: Client>(
    client: &C,
    target: &str,
    watch: bool,
    timeout: Option<Duration>,
    scope: &Scope,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let (kind, name) = match parse_target(target, Some(Kind::Deployment))? {
        (kind @ (Kind::Deployment | Kind::StatefulSet), name) => (kind, name),
        (kind, _) => {
            return Err(CtlError::Usage(format!(
                "rollout status works on deployments and statefulsets, not {kind}s"
            )));
        }
    };
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last = String::new();
    loop {
        let state = if kind == Kind::StatefulSet {
            let sts: StatefulSet = client
                .get(scope.namespace(), &name)
                .await
                .map_err(|e| CtlError::api(format!("reading statefulset {name:?}"), e))?;
            stateful_set_status(&sts)
        } else {
            rollout_status(&get_deployment(client, scope, &name).await?)
        };
        match state {
            RolloutStatus::Done(message) => {
                writeln!(out, "{message}")?;
                return Ok(());
            }
            RolloutStatus::Failed(message) => return Err(CtlError::Usage(message)),
            RolloutStatus::Waiting(message) => {
                if message != last {
                    writeln!(out, "{message}")?;
                    out.flush()?;
                    last = message;
                }
            }
        }
        if !watch {
            return Ok(());
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Err(CtlError::Usage(format!(
                "timed out waiting for the rollout of {kind} {name:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}
