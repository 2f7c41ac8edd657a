//! The default plugins, with Kubernetes' semantics and names, and the [`Registry`] that
//! creates plugins by name for configuration files.
//!
//! | plugin | extension points |
//! |---|---|
//! | [`PrioritySort`] | QueueSort |
//! | [`NodeName`] | PreFilter, Filter |
//! | [`NodeUnschedulable`] | Filter |
//! | [`TaintToleration`] | Filter, PreScore, Score |
//! | [`NodeAffinity`] | PreFilter, Filter, PreScore, Score |
//! | [`NodePorts`] | PreFilter, Filter |
//! | [`NodeResourcesFit`] | Filter, Score |
//! | [`BalancedAllocation`] (`NodeResourcesBalancedAllocation`) | Score |
//! | [`ImageLocality`] | PreScore, Score |
//! | [`InterPodAffinity`] | PreFilter, Filter, PreScore, Score |
//! | [`PodTopologySpread`] | PreFilter, Filter, PreScore, Score |
//! | [`DefaultPreemption`] | PostFilter |
//! | [`Coscheduling`] | Permit |
//! | [`DefaultBinder`] | Bind |
//!
//! # Layout
//! One module per plugin, plus [`helpers`] (normalization, node selector matching, a fast
//! hasher) and [`topology_counts`] (numbers per topology domain).

pub mod balanced_allocation;
pub mod coscheduling;
pub mod default_binder;
pub mod default_preemption;
pub mod helpers;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod taint_toleration;
pub mod topology_counts;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

pub use balanced_allocation::BalancedAllocation;
pub use coscheduling::{Coscheduling, CoschedulingArgs};
pub use default_binder::DefaultBinder;
pub use default_preemption::DefaultPreemption;
pub use image_locality::ImageLocality;
pub use inter_pod_affinity::{InterPodAffinity, InterPodAffinityArgs};
pub use node_affinity::NodeAffinity;
pub use node_name::NodeName;
pub use node_ports::NodePorts;
pub use node_resources_fit::{
    NodeResourcesFit, NodeResourcesFitArgs, ScoringStrategy, ScoringType,
};
pub use node_unschedulable::NodeUnschedulable;
pub use pod_topology_spread::PodTopologySpread;
pub use priority_sort::PrioritySort;
pub use taint_toleration::TaintToleration;

use crate::framework::{DEFAULT_SCHEDULER_NAME, Plugin, Profile, ProfileError};

/// The default plugins in the order they run, with their Score weights (kube-scheduler's).
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    (PrioritySort::NAME, 1),
    (NodeUnschedulable::NAME, 1),
    (NodeName::NAME, 1),
    (TaintToleration::NAME, 3),
    (NodeAffinity::NAME, 2),
    (NodePorts::NAME, 1),
    (NodeResourcesFit::NAME, 1),
    (PodTopologySpread::NAME, 2),
    (InterPodAffinity::NAME, 2),
    (BalancedAllocation::NAME, 1),
    (ImageLocality::NAME, 1),
    (DefaultPreemption::NAME, 1),
    (Coscheduling::NAME, 1),
    (DefaultBinder::NAME, 1),
];

/// Creates a plugin from its optional arguments (`pluginConfig[].args`); an error message
/// names the bad field inside the arguments.
pub type PluginFactory =
    Arc<dyn Fn(Option<&serde_yaml_ng::Value>) -> Result<Arc<dyn Plugin>, String> + Send + Sync>;

/// Plugins by name, for configuration files. [`Registry::default`] knows the default plugins;
/// register your own with [`Registry::register`].
#[derive(Clone)]
pub struct Registry {
    factories: BTreeMap<String, PluginFactory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

/// Parse a plugin's arguments (the defaults when absent).
pub fn parse_args<T: DeserializeOwned + Default>(
    args: Option<&serde_yaml_ng::Value>,
) -> Result<T, String> {
    match args {
        None => Ok(T::default()),
        Some(value) => serde_yaml_ng::from_value(value.clone()).map_err(|e| e.to_string()),
    }
}

/// A factory for a plugin without arguments.
fn plain<P: Plugin + Default>() -> PluginFactory {
    Arc::new(|args| match args {
        None => Ok(Arc::new(P::default()) as Arc<dyn Plugin>),
        Some(_) => Err("this plugin takes no arguments".into()),
    })
}

impl Default for Registry {
    fn default() -> Self {
        let mut registry = Registry::empty();
        registry.register(PrioritySort::NAME, plain::<PrioritySort>());
        registry.register(NodeUnschedulable::NAME, plain::<NodeUnschedulable>());
        registry.register(NodeName::NAME, plain::<NodeName>());
        registry.register(TaintToleration::NAME, plain::<TaintToleration>());
        registry.register(NodeAffinity::NAME, plain::<NodeAffinity>());
        registry.register(NodePorts::NAME, plain::<NodePorts>());
        registry.register(
            NodeResourcesFit::NAME,
            Arc::new(|args| {
                let args: NodeResourcesFitArgs = parse_args(args)?;
                Ok(Arc::new(NodeResourcesFit::new(args)?) as Arc<dyn Plugin>)
            }),
        );
        registry.register(PodTopologySpread::NAME, plain::<PodTopologySpread>());
        registry.register(
            InterPodAffinity::NAME,
            Arc::new(|args| {
                let args: InterPodAffinityArgs = parse_args(args)?;
                Ok(Arc::new(InterPodAffinity::new(args)?) as Arc<dyn Plugin>)
            }),
        );
        registry.register(BalancedAllocation::NAME, plain::<BalancedAllocation>());
        registry.register(ImageLocality::NAME, plain::<ImageLocality>());
        registry.register(DefaultPreemption::NAME, plain::<DefaultPreemption>());
        registry.register(
            Coscheduling::NAME,
            Arc::new(|args| {
                let args: CoschedulingArgs = parse_args(args)?;
                Ok(Arc::new(Coscheduling::new(args)?) as Arc<dyn Plugin>)
            }),
        );
        registry.register(DefaultBinder::NAME, plain::<DefaultBinder>());
        registry
    }
}

impl Registry {
    /// No plugins.
    pub fn empty() -> Self {
        Registry {
            factories: BTreeMap::new(),
        }
    }

    /// Register (or replace) a plugin factory under a name.
    pub fn register(&mut self, name: impl Into<String>, factory: PluginFactory) {
        self.factories.insert(name.into(), factory);
    }

    /// Create a plugin by name.
    pub fn create(
        &self,
        name: &str,
        args: Option<&serde_yaml_ng::Value>,
    ) -> Option<Result<Arc<dyn Plugin>, String>> {
        self.factories.get(name).map(|f| f(args))
    }

    /// The registered names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

/// The default profile: every default plugin at every extension point it serves, with
/// kube-scheduler's weights, adaptive search, seed 0.
pub fn default_profile() -> Profile {
    default_profile_named(DEFAULT_SCHEDULER_NAME).expect("the default plugins form a valid profile")
}

/// The default profile under another scheduler name.
pub fn default_profile_named(name: &str) -> Result<Profile, ProfileError> {
    let registry = Registry::default();
    let mut profile = Profile::new(name);
    for (plugin, weight) in DEFAULT_PLUGINS {
        let plugin = registry
            .create(plugin, None)
            .expect("default plugins are registered")
            .expect("default plugins need no arguments");
        profile.add_plugin(plugin, *weight, |_| true)?;
    }
    Ok(profile)
}
