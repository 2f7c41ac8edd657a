//! The pod state machine: a pure function from (the desired [`Pod`], what the runtime holds
//! for it, probe results, backoff records, now) to the actions to take and the status to
//! report. The agent's pod worker gathers the inputs, calls [`plan`], carries the actions out
//! and calls it again until nothing is left to do; everything kubelet-like about the rules lives
//! here and is unit-tested without a runtime or a clock.
//!
//! The rules, in order:
//! - A pod being deleted starts nothing and stops every running container with its grace
//!   period, sidecars last; once none runs it is [`Plan::terminated`].
//! - Without a ready sandbox, one is created (attempt + 1, and the old one removed).
//! - Init containers run one at a time, in order; one that fails is restarted (policy
//!   `Always`/`OnFailure`) or fails the pod (`Never`). A [`sidecar`] (`restartPolicy:
//!   Always`) only has to have started; it runs alongside the app containers, restarts
//!   whenever it exits, and is stopped (last declared first) once they are done for good.
//! - Then every app container is started; one that exits is restarted by the restart policy,
//!   after the [`backoff`] (CrashLoopBackOff); one whose liveness or startup probe failed is
//!   killed with the probe's (or pod's) grace period and then restarted the same way.
//! - A pod whose phase turned `Succeeded` or `Failed` stays so: nothing restarts, its sandbox
//!   is stopped.
//! - Statuses and reasons follow kubelet: `ContainerCreating`, `PodInitializing`,
//!   `CrashLoopBackOff` with `back-off 20s restarting failed container=...`, `Completed`,
//!   `Error`, the runtime's `ErrImagePull`/`RunContainerError`/..., the phase as kubelet's
//!   `getPhase` computes it, conditions `PodScheduled`, `Initialized`, `ContainersReady`,
//!   `Ready` with their reasons; `Ready` also waits for the pod's readiness gates
//!   ([`readiness`]).
//!
//! # Layout
//! - [`clock`]: wall-clock time that moves with tokio's (paused) clock.
//! - [`backoff`]: the CrashLoopBackOff delays.
//! - `plan`: [`plan`] and its inputs and outputs.
//! - [`readiness`]: the conditions the agent owns, readiness gates, and merging in the
//!   conditions others write.
//! - [`sidecar`]: the rules for sidecars (init containers with `restartPolicy: Always`).

pub mod backoff;
pub mod clock;
mod plan;
pub mod readiness;
pub mod sidecar;

pub use backoff::{Backoff, RestartDecision};
pub use plan::{
    Action, Input, LABEL_CONTAINER_NAME, LABEL_POD_UID, Observed, Plan, ProbeState, StartFailure,
    plan, to_time,
};

#[cfg(test)]
mod tests;
