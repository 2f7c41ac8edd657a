//! [`Profile`]: the plugins of one `schedulerName`, per extension point, with the Score
//! plugins' weights and the search settings. Built from code ([`Profile::with_plugin`]) or
//! from a configuration file ([`crate::config`]).

use std::sync::Arc;

use super::plugin::*;

/// The name pods get when `spec.schedulerName` is empty.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// The most plugins one extension point holds (the framework keeps per-cycle skip flags in a
/// 64-bit mask).
pub const MAX_PLUGINS_PER_POINT: usize = 64;

/// An extension point, as configuration files name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtensionPoint {
    /// `queueSort`.
    QueueSort,
    /// `preFilter`.
    PreFilter,
    /// `filter`.
    Filter,
    /// `postFilter`.
    PostFilter,
    /// `preScore`.
    PreScore,
    /// `score` (with NormalizeScore).
    Score,
    /// `reserve` (with Unreserve).
    Reserve,
    /// `permit`.
    Permit,
    /// `preBind`.
    PreBind,
    /// `bind`.
    Bind,
    /// `postBind`.
    PostBind,
}

impl ExtensionPoint {
    /// Every extension point, in cycle order.
    pub const ALL: [ExtensionPoint; 11] = [
        ExtensionPoint::QueueSort,
        ExtensionPoint::PreFilter,
        ExtensionPoint::Filter,
        ExtensionPoint::PostFilter,
        ExtensionPoint::PreScore,
        ExtensionPoint::Score,
        ExtensionPoint::Reserve,
        ExtensionPoint::Permit,
        ExtensionPoint::PreBind,
        ExtensionPoint::Bind,
        ExtensionPoint::PostBind,
    ];

    /// The name in configuration files (`preFilter`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExtensionPoint::QueueSort => "queueSort",
            ExtensionPoint::PreFilter => "preFilter",
            ExtensionPoint::Filter => "filter",
            ExtensionPoint::PostFilter => "postFilter",
            ExtensionPoint::PreScore => "preScore",
            ExtensionPoint::Score => "score",
            ExtensionPoint::Reserve => "reserve",
            ExtensionPoint::Permit => "permit",
            ExtensionPoint::PreBind => "preBind",
            ExtensionPoint::Bind => "bind",
            ExtensionPoint::PostBind => "postBind",
        }
    }
}

/// Why a profile cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A Score weight out of range.
    #[error("plugin {plugin}: score weight {weight} is out of range; use 1 to 100")]
    Weight {
        /// The plugin.
        plugin: String,
        /// The weight given.
        weight: i64,
    },
    /// Too many plugins at one extension point.
    #[error("extension point {point}: more than {MAX_PLUGINS_PER_POINT} plugins")]
    TooMany {
        /// The extension point.
        point: &'static str,
    },
    /// Two queue sort plugins.
    #[error("queueSort: only one plugin may sort the queue, found {first} and {second}")]
    TwoQueueSorts {
        /// The plugin already there.
        first: String,
        /// The one added.
        second: String,
    },
    /// The same plugin twice at one extension point.
    #[error("extension point {point}: plugin {plugin} is enabled twice")]
    Duplicate {
        /// The extension point.
        point: &'static str,
        /// The plugin.
        plugin: String,
    },
}

/// The plugins of one scheduler name; see the [module docs](self).
#[derive(Clone, Default)]
pub struct Profile {
    /// The `spec.schedulerName` this profile serves.
    pub scheduler_name: String,
    /// How much of a large cluster the Filter phase searches: 0 for kube-scheduler's adaptive
    /// rule, 1-100 for a fixed percentage (see [`super::num_feasible_nodes_to_find`]).
    pub percentage_of_nodes_to_score: u32,
    /// Seeds the tie-breaking among equally scored nodes, so that runs repeat.
    pub seed: u64,
    pub(crate) queue_sort: Option<Arc<dyn QueueSortPlugin>>,
    pub(crate) pre_filter: Vec<Arc<dyn PreFilterPlugin>>,
    pub(crate) filter: Vec<Arc<dyn FilterPlugin>>,
    pub(crate) post_filter: Vec<Arc<dyn PostFilterPlugin>>,
    pub(crate) pre_score: Vec<Arc<dyn PreScorePlugin>>,
    pub(crate) score: Vec<(Arc<dyn ScorePlugin>, i64)>,
    pub(crate) reserve: Vec<Arc<dyn ReservePlugin>>,
    pub(crate) permit: Vec<Arc<dyn PermitPlugin>>,
    pub(crate) pre_bind: Vec<Arc<dyn PreBindPlugin>>,
    pub(crate) bind: Vec<Arc<dyn BindPlugin>>,
    pub(crate) post_bind: Vec<Arc<dyn PostBindPlugin>>,
    /// The plugins that can reject a pod (PreFilter, Filter, Permit), whose queueing hints
    /// decide when a rejected pod is tried again.
    pub(crate) rejecters: Vec<Arc<dyn Plugin>>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("scheduler_name", &self.scheduler_name)
            .field(
                "percentage_of_nodes_to_score",
                &self.percentage_of_nodes_to_score,
            )
            .field("plugins", &self.plugin_names())
            .finish()
    }
}

impl Profile {
    /// A profile with no plugins (every node is feasible; ties broken at random).
    pub fn new(scheduler_name: impl Into<String>) -> Self {
        Profile {
            scheduler_name: scheduler_name.into(),
            ..Profile::default()
        }
    }

    /// Add a plugin at every extension point it serves (`weight` applies to Score).
    pub fn with_plugin(
        mut self,
        plugin: Arc<dyn Plugin>,
        weight: i64,
    ) -> Result<Self, ProfileError> {
        self.add_plugin(plugin, weight, |_| true)?;
        Ok(self)
    }

    /// Add a plugin at the extension points it serves for which `enabled` says yes.
    pub fn add_plugin(
        &mut self,
        plugin: Arc<dyn Plugin>,
        weight: i64,
        enabled: impl Fn(ExtensionPoint) -> bool,
    ) -> Result<(), ProfileError> {
        let name = plugin.name();
        let ext = plugin.clone().extensions();
        let rejects = (ext.pre_filter.is_some() && enabled(ExtensionPoint::PreFilter))
            || (ext.filter.is_some() && enabled(ExtensionPoint::Filter))
            || (ext.permit.is_some() && enabled(ExtensionPoint::Permit));

        macro_rules! push {
            ($point:expr, $field:ident) => {
                if let Some(p) = ext.$field.filter(|_| enabled($point)) {
                    push_unique(&mut self.$field, p, $point.as_str(), name)?;
                }
            };
        }
        if let Some(p) = ext
            .queue_sort
            .filter(|_| enabled(ExtensionPoint::QueueSort))
        {
            if let Some(first) = &self.queue_sort {
                return Err(ProfileError::TwoQueueSorts {
                    first: first.name().to_owned(),
                    second: name.to_owned(),
                });
            }
            self.queue_sort = Some(p);
        }
        push!(ExtensionPoint::PreFilter, pre_filter);
        push!(ExtensionPoint::Filter, filter);
        push!(ExtensionPoint::PostFilter, post_filter);
        push!(ExtensionPoint::PreScore, pre_score);
        if let Some(p) = ext.score.filter(|_| enabled(ExtensionPoint::Score)) {
            if !(1..=100).contains(&weight) {
                return Err(ProfileError::Weight {
                    plugin: name.to_owned(),
                    weight,
                });
            }
            if self.score.iter().any(|(s, _)| s.name() == name) {
                return Err(ProfileError::Duplicate {
                    point: "score",
                    plugin: name.to_owned(),
                });
            }
            if self.score.len() == MAX_PLUGINS_PER_POINT {
                return Err(ProfileError::TooMany { point: "score" });
            }
            self.score.push((p, weight));
        }
        push!(ExtensionPoint::Reserve, reserve);
        push!(ExtensionPoint::Permit, permit);
        push!(ExtensionPoint::PreBind, pre_bind);
        push!(ExtensionPoint::Bind, bind);
        push!(ExtensionPoint::PostBind, post_bind);
        if rejects && !self.rejecters.iter().any(|p| p.name() == name) {
            self.rejecters.push(plugin);
        }
        Ok(())
    }

    /// The plugin names per extension point (for logs and tests), e.g.
    /// `("score", ["NodeResourcesFit", ...])`.
    pub fn plugin_names(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        fn names<T: ?Sized + Plugin>(v: &[Arc<T>]) -> Vec<&'static str> {
            v.iter().map(|p| p.name()).collect()
        }
        vec![
            (
                "queueSort",
                self.queue_sort.iter().map(|p| p.name()).collect(),
            ),
            ("preFilter", names(&self.pre_filter)),
            ("filter", names(&self.filter)),
            ("postFilter", names(&self.post_filter)),
            ("preScore", names(&self.pre_score)),
            ("score", self.score.iter().map(|(p, _)| p.name()).collect()),
            ("reserve", names(&self.reserve)),
            ("permit", names(&self.permit)),
            ("preBind", names(&self.pre_bind)),
            ("bind", names(&self.bind)),
            ("postBind", names(&self.post_bind)),
        ]
    }

    /// The number of Bind plugins (a profile the loop runs needs one).
    pub fn bind_plugins(&self) -> usize {
        self.bind.len()
    }

    /// The Score plugins and their weights.
    pub fn score_weights(&self) -> Vec<(&'static str, i64)> {
        self.score.iter().map(|(p, w)| (p.name(), *w)).collect()
    }
}

fn push_unique<T: ?Sized + Plugin>(
    list: &mut Vec<Arc<T>>,
    plugin: Arc<T>,
    point: &'static str,
    name: &'static str,
) -> Result<(), ProfileError> {
    if list.iter().any(|p| p.name() == name) {
        return Err(ProfileError::Duplicate {
            point,
            plugin: name.to_owned(),
        });
    }
    if list.len() == MAX_PLUGINS_PER_POINT {
        return Err(ProfileError::TooMany { point });
    }
    list.push(plugin);
    Ok(())
}
