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

/// The reasons of a [`Status`]: the first is kept inline, so that the common rejection with
/// one static reason allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reasons {
    first: Option<Cow<'static, str>>,
    rest: Vec<Cow<'static, str>>,
}

impl Reasons {
    /// No reason.
    pub const fn new() -> Self {
        Reasons {
            first: None,
            rest: Vec::new(),
        }
    }

    /// Add a reason.
    pub fn push(&mut self, reason: impl Into<Cow<'static, str>>) {
        if self.first.is_none() {
            self.first = Some(reason.into());
        } else {
            self.rest.push(reason.into());
        }
    }

    /// The reasons in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.first.iter().chain(&self.rest).map(|r| r.as_ref())
    }

    /// The number of reasons.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Whether there is no reason.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Whether both hold the same reasons, checked by pointer before by content: the
    /// reasons of most rejections are the same static strings (comparing a whole cluster's
    /// rejections one after the other calls for no string comparison then).
    pub fn same_as(&self, other: &Reasons) -> bool {
        fn same(a: &str, b: &str) -> bool {
            std::ptr::eq(a, b) || a == b
        }
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| same(a, b))
    }

    /// Whether `reason` is one of them.
    pub fn contains(&self, reason: &str) -> bool {
        self.iter().any(|r| r == reason)
    }
}

impl<R: Into<Cow<'static, str>>> FromIterator<R> for Reasons {
    fn from_iter<I: IntoIterator<Item = R>>(iter: I) -> Self {
        let mut reasons = Reasons::new();
        for r in iter {
            reasons.push(r);
        }
        reasons
    }
}

/// The result of a plugin call; see the [module docs](self). Success, skip and a rejection
/// with one static reason allocate nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    code: Code,
    reasons: Reasons,
    plugin: &'static str,
}

impl Status {
    /// Success.
    pub const fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Reasons::new(),
            plugin: "",
        }
    }

    /// Skip this plugin for the cycle.
    pub const fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Reasons::new(),
            plugin: "",
        }
    }

    /// A status with a code and one reason.
    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Self {
        Status {
            code,
            reasons: Reasons {
                first: Some(reason.into()),
                rest: Vec::new(),
            },
            plugin: "",
        }
    }

    /// A status with a code and these reasons (built up by the caller).
    pub fn from_reasons(code: Code, reasons: Reasons) -> Self {
        Status {
            code,
            reasons,
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
    pub fn reasons(&self) -> &Reasons {
        &self.reasons
    }

    /// Take the reasons out.
    pub fn into_reasons(self) -> Reasons {
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
        self.reasons.iter().collect::<Vec<_>>().join(", ")
    }
}

impl Default for Status {
    fn default() -> Self {
        Status::success()
    }
}
