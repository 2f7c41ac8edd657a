//! The scheduler's configuration file (YAML, kube-scheduler's `KubeSchedulerConfiguration`
//! shape): profiles per `schedulerName`, plugins enabled and disabled per extension point
//! (or for all of them with `multiPoint`), Score weights, plugin arguments and the search
//! percentage. Anything invalid is an error at start that names the field.
//!
//! ```
//! use orchestra_sched::config::SchedulerConfig;
//! use orchestra_sched::plugins::Registry;
//!
//! let yaml = r#"
//! percentageOfNodesToScore: 50
//! profiles:
//!   - schedulerName: default-scheduler
//!   - schedulerName: bin-packing
//!     plugins:
//!       score:
//!         disabled: [{name: NodeResourcesBalancedAllocation}]
//!         enabled: [{name: NodeResourcesFit, weight: 5}]
//!     pluginConfig:
//!       - name: NodeResourcesFit
//!         args: {scoringStrategy: {type: MostAllocated}}
//! "#;
//! let profiles = SchedulerConfig::parse(yaml)?.build(&Registry::default())?;
//! assert_eq!(profiles.names(), ["bin-packing", "default-scheduler"]);
//! let weights = profiles.get("bin-packing").unwrap().profile().score_weights();
//! assert!(weights.contains(&("NodeResourcesFit", 5)));
//! # Ok::<(), orchestra_sched::config::ConfigError>(())
//! ```

use std::collections::HashSet;

use serde::Deserialize;

use crate::framework::{
    DEFAULT_SCHEDULER_NAME, ExtensionPoint, Extensions, Plugin, Profile, Profiles,
};
use crate::plugins::{DEFAULT_PLUGINS, Registry};

/// Why a configuration was refused: the field and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid YAML for the configuration (unknown field, wrong type); the
    /// message names the field and the line.
    #[error("invalid scheduler configuration: {0}")]
    Parse(#[from] serde_yaml_ng::Error),
    /// A value is invalid.
    #[error("invalid scheduler configuration: {field}: {message}")]
    Invalid {
        /// The field's path, e.g. `profiles[1].plugins.score.enabled[0].weight`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration file could not be read.
    #[error("reading the scheduler configuration {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The configuration file; see the [module docs](self).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Optional, for kube-scheduler compatibility (any value is accepted).
    #[serde(default)]
    pub api_version: Option<String>,
    /// Optional; `KubeSchedulerConfiguration` if given.
    #[serde(default)]
    pub kind: Option<String>,
    /// The default search percentage for profiles (0 = adaptive).
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
    /// The tie-breaking seed for every profile.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The profiles; one `default-scheduler` profile with the default plugins when empty.
    #[serde(default)]
    pub profiles: Vec<ProfileConfig>,
}

/// One profile.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileConfig {
    /// The scheduler name; `default-scheduler` when empty.
    #[serde(default)]
    pub scheduler_name: String,
    /// This profile's search percentage.
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Plugins enabled and disabled, per extension point.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Plugin arguments.
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

/// Plugins per extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginsConfig {
    /// Every extension point a plugin serves.
    #[serde(default)]
    pub multi_point: PluginSet,
    /// QueueSort.
    #[serde(default)]
    pub queue_sort: PluginSet,
    /// PreFilter.
    #[serde(default)]
    pub pre_filter: PluginSet,
    /// Filter.
    #[serde(default)]
    pub filter: PluginSet,
    /// PostFilter.
    #[serde(default)]
    pub post_filter: PluginSet,
    /// PreScore.
    #[serde(default)]
    pub pre_score: PluginSet,
    /// Score.
    #[serde(default)]
    pub score: PluginSet,
    /// Reserve.
    #[serde(default)]
    pub reserve: PluginSet,
    /// Permit.
    #[serde(default)]
    pub permit: PluginSet,
    /// PreBind.
    #[serde(default)]
    pub pre_bind: PluginSet,
    /// Bind.
    #[serde(default)]
    pub bind: PluginSet,
    /// PostBind.
    #[serde(default)]
    pub post_bind: PluginSet,
}

impl PluginsConfig {
    fn at(&self, point: ExtensionPoint) -> &PluginSet {
        match point {
            ExtensionPoint::QueueSort => &self.queue_sort,
            ExtensionPoint::PreFilter => &self.pre_filter,
            ExtensionPoint::Filter => &self.filter,
            ExtensionPoint::PostFilter => &self.post_filter,
            ExtensionPoint::PreScore => &self.pre_score,
            ExtensionPoint::Score => &self.score,
            ExtensionPoint::Reserve => &self.reserve,
            ExtensionPoint::Permit => &self.permit,
            ExtensionPoint::PreBind => &self.pre_bind,
            ExtensionPoint::Bind => &self.bind,
            ExtensionPoint::PostBind => &self.post_bind,
        }
    }
}

/// Plugins enabled and disabled at one extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSet {
    /// Added after the defaults, in order.
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Removed from the defaults; `*` removes them all.
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

impl PluginSet {
    fn disables(&self, name: &str) -> bool {
        self.disabled
            .iter()
            .any(|p| p.name == name || p.name == "*")
    }
}

/// A plugin by name, with its Score weight.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// The plugin's name.
    pub name: String,
    /// The Score weight (1-100); the default plugin's weight, or 1.
    #[serde(default)]
    pub weight: Option<i64>,
}

/// Arguments of one plugin.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin's name.
    pub name: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Option<serde_yaml_ng::Value>,
}

/// Whether a plugin's extensions include a point.
fn serves(ext: &Extensions, point: ExtensionPoint) -> bool {
    match point {
        ExtensionPoint::QueueSort => ext.queue_sort.is_some(),
        ExtensionPoint::PreFilter => ext.pre_filter.is_some(),
        ExtensionPoint::Filter => ext.filter.is_some(),
        ExtensionPoint::PostFilter => ext.post_filter.is_some(),
        ExtensionPoint::PreScore => ext.pre_score.is_some(),
        ExtensionPoint::Score => ext.score.is_some(),
        ExtensionPoint::Reserve => ext.reserve.is_some(),
        ExtensionPoint::Permit => ext.permit.is_some(),
        ExtensionPoint::PreBind => ext.pre_bind.is_some(),
        ExtensionPoint::Bind => ext.bind.is_some(),
        ExtensionPoint::PostBind => ext.post_bind.is_some(),
    }
}

impl SchedulerConfig {
    /// Parse a configuration (unknown fields are errors).
    pub fn parse(yaml: &str) -> Result<Self, ConfigError> {
        Ok(serde_yaml_ng::from_str(yaml)?)
    }

    /// Read and parse a configuration file.
    pub fn read(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        SchedulerConfig::parse(&text)
    }

    /// Build the profiles, creating plugins from `registry`.
    pub fn build(&self, registry: &Registry) -> Result<Profiles, ConfigError> {
        if let Some(kind) = self
            .kind
            .as_deref()
            .filter(|k| *k != "KubeSchedulerConfiguration")
        {
            return Err(invalid(
                "kind",
                format!("{kind:?} is not KubeSchedulerConfiguration"),
            ));
        }
        check_percentage(
            "percentageOfNodesToScore",
            self.percentage_of_nodes_to_score,
        )?;
        let default = [ProfileConfig::default()];
        let configs = if self.profiles.is_empty() {
            &default[..]
        } else {
            &self.profiles[..]
        };
        let mut profiles = Profiles::new();
        let mut seen = HashSet::new();
        for (i, config) in configs.iter().enumerate() {
            let path = format!("profiles[{i}]");
            let mut profile = build_profile(config, registry, &path)?;
            if !seen.insert(profile.scheduler_name.clone()) {
                return Err(invalid(
                    format!("{path}.schedulerName"),
                    format!("{:?} is used by two profiles", profile.scheduler_name),
                ));
            }
            check_percentage(
                &format!("{path}.percentageOfNodesToScore"),
                config.percentage_of_nodes_to_score,
            )?;
            profile.percentage_of_nodes_to_score = config
                .percentage_of_nodes_to_score
                .or(self.percentage_of_nodes_to_score)
                .unwrap_or(0);
            profile.seed = self.seed.unwrap_or(0);
            profiles.insert(profile);
        }
        Ok(profiles)
    }
}

fn check_percentage(field: &str, value: Option<u32>) -> Result<(), ConfigError> {
    match value {
        Some(p) if p > 100 => Err(invalid(
            field,
            format!("{p} is not a percentage (0-100; 0 is adaptive)"),
        )),
        _ => Ok(()),
    }
}

/// Build one profile: the default plugins less `multiPoint.disabled`, plus
/// `multiPoint.enabled`, each at the points it serves unless disabled there; then each
/// point's `enabled` plugins at that point only.
fn build_profile(
    config: &ProfileConfig,
    registry: &Registry,
    path: &str,
) -> Result<Profile, ConfigError> {
    let name = if config.scheduler_name.is_empty() {
        DEFAULT_SCHEDULER_NAME
    } else {
        &config.scheduler_name
    };
    let plugins = &config.plugins;

    // Arguments by plugin name.
    let mut args = std::collections::HashMap::new();
    for (j, pc) in config.plugin_config.iter().enumerate() {
        let field = format!("{path}.pluginConfig[{j}]");
        if registry.create(&pc.name, None).is_none() {
            return Err(unknown_plugin(&format!("{field}.name"), &pc.name, registry));
        }
        if args.insert(pc.name.as_str(), pc.args.as_ref()).is_some() {
            return Err(invalid(
                format!("{field}.name"),
                format!("{} is configured twice", pc.name),
            ));
        }
    }
    let mut cache: std::collections::HashMap<String, std::sync::Arc<dyn Plugin>> =
        std::collections::HashMap::new();
    let mut create =
        |plugin: &str, field: &str| -> Result<std::sync::Arc<dyn Plugin>, ConfigError> {
            if let Some(p) = cache.get(plugin) {
                return Ok(p.clone());
            }
            let p = match registry.create(plugin, args.get(plugin).copied().flatten()) {
                None => return Err(unknown_plugin(field, plugin, registry)),
                Some(Err(message)) => {
                    let at = config
                        .plugin_config
                        .iter()
                        .position(|c| c.name == plugin)
                        .map_or_else(
                            || field.to_owned(),
                            |j| format!("{path}.pluginConfig[{j}].args"),
                        );
                    return Err(invalid(at, message));
                }
                Some(Ok(p)) => p,
            };
            cache.insert(plugin.to_owned(), p.clone());
            Ok(p)
        };

    // The multi-point list: defaults less disabled, plus enabled.
    let mut multi: Vec<(String, i64, String)> = DEFAULT_PLUGINS
        .iter()
        .filter(|(n, _)| !plugins.multi_point.disables(n))
        .map(|(n, w)| ((*n).to_owned(), *w, format!("{path}.plugins.multiPoint")))
        .collect();
    for (j, p) in plugins.multi_point.enabled.iter().enumerate() {
        let field = format!("{path}.plugins.multiPoint.enabled[{j}]");
        let weight = p.weight.unwrap_or_else(|| default_weight(&p.name));
        match multi.iter_mut().find(|(n, _, _)| *n == p.name) {
            Some(entry) => {
                entry.1 = weight;
                entry.2 = field;
            }
            None => multi.push((p.name.clone(), weight, field)),
        }
    }
    for (j, p) in plugins.multi_point.disabled.iter().enumerate() {
        if p.name != "*" && registry.create(&p.name, None).is_none() {
            return Err(unknown_plugin(
                &format!("{path}.plugins.multiPoint.disabled[{j}].name"),
                &p.name,
                registry,
            ));
        }
    }

    let mut profile = Profile::new(name);
    for (plugin_name, weight, field) in &multi {
        let plugin = create(plugin_name, &format!("{field}.name"))?;
        profile
            .add_plugin(plugin, *weight, |point| {
                let set = plugins.at(point);
                !set.disables(plugin_name) && !set.enabled.iter().any(|e| e.name == *plugin_name)
            })
            .map_err(|e| invalid(field.clone(), e.to_string()))?;
    }
    for point in ExtensionPoint::ALL {
        let set = plugins.at(point);
        for (j, p) in set.enabled.iter().enumerate() {
            let field = format!("{path}.plugins.{}.enabled[{j}]", point.as_str());
            let plugin = create(&p.name, &format!("{field}.name"))?;
            if !serves(&plugin.clone().extensions(), point) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!(
                        "plugin {} does not implement the {} extension point",
                        p.name,
                        point.as_str()
                    ),
                ));
            }
            let weight = p.weight.unwrap_or_else(|| default_weight(&p.name));
            profile
                .add_plugin(plugin, weight, |q| q == point)
                .map_err(|e| invalid(field.clone(), e.to_string()))?;
        }
    }
    Ok(profile)
}

fn default_weight(name: &str) -> i64 {
    DEFAULT_PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |(_, w)| *w)
}

fn unknown_plugin(field: &str, name: &str, registry: &Registry) -> ConfigError {
    invalid(
        field,
        format!(
            "unknown plugin {name:?}; registered plugins: {}",
            registry.names().collect::<Vec<_>>().join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Result<Profiles, ConfigError> {
        SchedulerConfig::parse(yaml)?.build(&Registry::default())
    }

    fn names(profiles: &Profiles, name: &str, point: &str) -> Vec<&'static str> {
        profiles
            .get(name)
            .unwrap()
            .profile()
            .plugin_names()
            .into_iter()
            .find(|(p, _)| *p == point)
            .unwrap()
            .1
    }

    #[test]
    fn empty_config_is_the_default_profile() {
        let profiles = build("{}").unwrap();
        assert_eq!(profiles.names(), ["default-scheduler"]);
        assert_eq!(
            names(&profiles, "default-scheduler", "filter"),
            [
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "PodTopologySpread",
                "InterPodAffinity"
            ]
        );
        let weights = profiles
            .get("default-scheduler")
            .unwrap()
            .profile()
            .score_weights();
        assert!(weights.contains(&("TaintToleration", 3)), "{weights:?}");
    }

    #[test]
    fn disables_per_point_and_everywhere() {
        let profiles = build(
            "profiles:\n- plugins:\n    multiPoint: {disabled: [{name: ImageLocality}]}\n    filter: {disabled: [{name: '*'}], enabled: [{name: NodeResourcesFit}]}\n",
        )
        .unwrap();
        assert_eq!(
            names(&profiles, "default-scheduler", "filter"),
            ["NodeResourcesFit"]
        );
        assert!(!names(&profiles, "default-scheduler", "score").contains(&"ImageLocality"));
        assert!(names(&profiles, "default-scheduler", "score").contains(&"NodeResourcesFit"));
    }

    #[test]
    fn errors_name_the_field() {
        let err = build("profiles:\n- plugins:\n    score: {enabeld: []}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("profiles[0].plugins.score") && err.contains("enabeld"),
            "{err}"
        );

        let err = build("profiles:\n- plugins:\n    score: {enabled: [{name: Nope}]}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("profiles[0].plugins.score.enabled[0].name: unknown plugin \"Nope\""),
            "{err}"
        );

        let err = build(
            "profiles:\n- plugins:\n    score: {enabled: [{name: NodeAffinity, weight: 0}]}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "profiles[0].plugins.score.enabled[0]: plugin NodeAffinity: score weight 0"
            ),
            "{err}"
        );

        let err = build("profiles:\n- plugins:\n    bind: {enabled: [{name: NodeAffinity}]}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not implement the bind extension point"),
            "{err}"
        );

        let err = build(
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {type: Sideways}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("profiles[0].pluginConfig[0].args"), "{err}");

        let err = build("profiles: [{schedulerName: a}, {schedulerName: a}]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("profiles[1].schedulerName"), "{err}");

        let err = build("percentageOfNodesToScore: 101")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("percentageOfNodesToScore: 101 is not a percentage"),
            "{err}"
        );
    }
}
