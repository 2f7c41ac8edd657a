//! [`Status`]: what a plugin says at an extension point: success, a rejection with reasons,
//! a request to skip it for this pod, to wait, or an internal error.

use std::borrow::Cow;

/// The kind of a [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The plugin is satisfied.
    Success,
    /// An internal error (a bug or bad state, not the pod's fault); the cycle stops.
    Error,
    /// The pod does not fit the node now; preemption may help.
    Unschedulable,
    /// The pod does not fit the node, and preempting pods would not change that.
    UnschedulableAndUnresolvable,
    /// Permit: the pod waits.
    Wait,
    /// PreFilter / PreScore: this plugin has nothing to check for this pod; its Filter /
    /// Score is skipped for the cycle. Bind: this binder does not handle the pod.
    Skip,
}

/// The result of a plugin call; see the [module docs](self). Success and skip carry no reason
/// and allocate nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    code: Code,
    reasons: Vec<Cow<'static, str>>,
    plugin: &'static str,
}

impl Status {
    /// Success.
    pub const fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// Skip this plugin for the cycle.
    pub const fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// A status with a code and one reason.
    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Self {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    /// The pod does not fit now (preemption may help).
    pub fn unschedulable(reason: impl Into<Cow<'static, str>>) -> Self {
        Status::new(Code::Unschedulable, reason)
    }

    /// The pod does not fit, whatever is preempted.
    pub fn unresolvable(reason: impl Into<Cow<'static, str>>) -> Self {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    /// An internal error.
    pub fn error(message: impl Into<Cow<'static, str>>) -> Self {
        Status::new(Code::Error, message)
    }

    /// Add a reason.
    pub fn with_reason(mut self, reason: impl Into<Cow<'static, str>>) -> Self {
        self.reasons.push(reason.into());
        self
    }

    /// Record the plugin that returned the status (the framework does this).
    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The reasons, e.g. `Insufficient cpu`.
    pub fn reasons(&self) -> &[Cow<'static, str>] {
        &self.reasons
    }

    /// Take the reasons out.
    pub fn into_reasons(self) -> Vec<Cow<'static, str>> {
        self.reasons
    }

    /// The plugin that returned it (empty if not recorded).
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    /// Whether the code is [`Code::Success`].
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the code is [`Code::Skip`].
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Whether the pod was rejected ([`Code::Unschedulable`] or
    /// [`Code::UnschedulableAndUnresolvable`]).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined by `, `.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

impl Default for Status {
    fn default() -> Self {
        Status::success()
    }
}
