//! A container's environment as kubelet builds it, as a pure function of the pod, the
//! container, and the ConfigMaps and Secrets the agent fetched ([`Sources`]).
//!
//! Order and precedence: the agent's injected variables (service links, DNS) first, then each
//! `envFrom` source in order, then `env` in order; a later definition of a name replaces the
//! earlier value in place. A literal `value` has its `$(VAR)` references
//! [expanded](super::expand) against everything defined before it; values from `valueFrom`
//! are not expanded. `command` and `args` are expanded against the final environment.
//!
//! Sources: `fieldRef` (`metadata.name`, `.namespace`, `.uid`, `metadata.labels['k']`,
//! `metadata.annotations['k']`, `spec.nodeName`, `spec.serviceAccountName`, `status.podIP`,
//! `status.hostIP`), `resourceFieldRef` (a limit or request, divided by `divisor` and rounded
//! up; a limit the container does not set is the node's capacity, as kubelet uses its
//! allocatable), `configMapKeyRef` / `secretKeyRef` (skipped when `optional` and missing), and
//! `envFrom` (every key of the object's `data` with the prefix; keys that are not valid
//! variable names are skipped, as kubelet does).
//!
//! A required object or key that is missing is a [`ConfigError`] worded as kubelet's
//! (`secret "db" not found`, `couldn't find key password in Secret default/db`): the
//! container waits in `CreateContainerConfigError`. No error or log line carries a value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use orchestra_api::resources::{
    ConfigMap, Container, EnvVarSource, Pod, ResourceFieldSelector, Secret,
};
use orchestra_api::validation::names::is_env_var_name;
use orchestra_api::{ApiError, Quantity};

use super::expand::expand;

/// The ConfigMaps and Secrets of the pod's namespace a container refers to, by name: `None`
/// when the API said the object does not exist.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// ConfigMaps by name.
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Option<Secret>>,
    /// The service account tokens of the pod's projected volumes, by what they are for.
    pub tokens: BTreeMap<super::tokens::TokenSource, String>,
}

impl Sources {
    fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.config_maps.get(name).and_then(Option::as_ref)
    }

    fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name).and_then(Option::as_ref)
    }
}

/// What the pod's fields resolve against besides the pod itself.
#[derive(Clone, Copy, Debug)]
pub struct PodContext<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its IP (empty before the sandbox has one).
    pub pod_ip: &'a str,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The node's CPU capacity (a container's CPU limit when it sets none).
    pub node_cpu: Quantity,
    /// The node's memory capacity (likewise).
    pub node_memory: Quantity,
}

/// Why a container's configuration cannot be built. Displays as kubelet words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// A required ConfigMap (`configmap "x" not found`) or Secret does not exist.
    ObjectNotFound {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A required key is not in the object.
    KeyNotFound {
        /// `ConfigMap` or `Secret`.
        kind: &'static str,
        /// The pod's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The key.
        key: String,
    },
    /// Reading the object failed for another reason than its absence.
    Fetch {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The API's error.
        message: String,
    },
    /// Anything else that cannot be resolved (a field path or resource the agent does not
    /// know, a container that does not exist).
    Unsupported(String),
}

impl ConfigError {
    /// The error for a failed read of a `kind` object named `name`.
    pub fn from_api(kind: &'static str, name: &str, err: &ApiError) -> Self {
        ConfigError::Fetch {
            kind,
            name: name.to_owned(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ObjectNotFound { kind, name } => write!(f, "{kind} {name:?} not found"),
            ConfigError::KeyNotFound {
                kind,
                namespace,
                name,
                key,
            } => write!(f, "couldn't find key {key} in {kind} {namespace}/{name}"),
            ConfigError::Fetch {
                kind,
                name,
                message,
            } => write!(f, "couldn't get {kind} {name:?}: {message}"),
            ConfigError::Unsupported(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Variables in definition order, where a redefinition replaces the value in place.
#[derive(Default)]
struct EnvList {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|&i| self.vars[i].1.clone())
    }
}

/// The container's environment: `injected` (service links, DNS), then `envFrom`, then
/// `env` (see the [module docs](self)).
pub fn resolve_env(
    ctx: &PodContext<'_>,
    container: &Container,
    sources: &Sources,
    injected: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = &ctx.pod.metadata.namespace;
    let mut env = EnvList::default();
    for (name, value) in injected {
        env.set(name, value);
    }
    for from in &container.env_from {
        let optional = |o: Option<bool>| o == Some(true);
        if let Some(reference) = &from.config_map_ref {
            match sources.config_map(&reference.name) {
                Some(map) => {
                    for (key, value) in &map.data {
                        set_prefixed(&mut env, &from.prefix, key, value.clone());
                    }
                }
                None if optional(reference.optional) => {}
                None => return Err(not_found("configmap", &reference.name)),
            }
        }
        if let Some(reference) = &from.secret_ref {
            match sources.secret(&reference.name) {
                Some(secret) => {
                    for (key, value) in &secret.data {
                        let value = String::from_utf8_lossy(&value.0).into_owned();
                        set_prefixed(&mut env, &from.prefix, key, value);
                    }
                }
                None if optional(reference.optional) => {}
                None => return Err(not_found("secret", &reference.name)),
            }
        }
    }
    for var in &container.env {
        let value = match &var.value_from {
            Some(source) if var.value.as_deref().is_none_or(str::is_empty) => {
                match value_from(ctx, container, sources, source, namespace)? {
                    Some(value) => value,
                    // An optional reference to something missing leaves the variable unset.
                    None => continue,
                }
            }
            _ => expand(var.value.as_deref().unwrap_or(""), |name| env.get(name)),
        };
        env.set(var.name.clone(), value);
    }
    Ok(env.vars)
}

fn set_prefixed(env: &mut EnvList, prefix: &str, key: &str, value: String) {
    let name = format!("{prefix}{key}");
    if is_env_var_name(&name).is_empty() {
        env.set(name, value);
    } else {
        // Only the key's name is logged: it is the value that may be secret.
        tracing::debug!(variable = %name, "skipping an envFrom key that is not a valid variable name");
    }
}

fn not_found(kind: &'static str, name: &str) -> ConfigError {
    ConfigError::ObjectNotFound {
        kind,
        name: name.to_owned(),
    }
}

/// One `valueFrom`: `Ok(None)` when an optional reference finds nothing.
fn value_from(
    ctx: &PodContext<'_>,
    container: &Container,
    sources: &Sources,
    source: &EnvVarSource,
    namespace: &str,
) -> Result<Option<String>, ConfigError> {
    if let Some(field) = &source.field_ref {
        return field_value(ctx, &field.field_path)
            .map(Some)
            .ok_or_else(|| {
                ConfigError::Unsupported(format!(
                    "unsupported fieldRef path {:?}",
                    field.field_path
                ))
            });
    }
    if let Some(selector) = &source.resource_field_ref {
        return resource_value(ctx, Some(container), selector).map(Some);
    }
    if let Some(key_ref) = &source.config_map_key_ref {
        let optional = key_ref.optional == Some(true);
        let Some(map) = sources.config_map(&key_ref.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(not_found("configmap", &key_ref.name))
            };
        };
        return match map.data.get(&key_ref.key) {
            Some(value) => Ok(Some(value.clone())),
            None if optional => Ok(None),
            None => Err(ConfigError::KeyNotFound {
                kind: "ConfigMap",
                namespace: namespace.to_owned(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            }),
        };
    }
    if let Some(key_ref) = &source.secret_key_ref {
        let optional = key_ref.optional == Some(true);
        let Some(secret) = sources.secret(&key_ref.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(not_found("secret", &key_ref.name))
            };
        };
        return match secret.data.get(&key_ref.key) {
            Some(value) => Ok(Some(String::from_utf8_lossy(&value.0).into_owned())),
            None if optional => Ok(None),
            None => Err(ConfigError::KeyNotFound {
                kind: "Secret",
                namespace: namespace.to_owned(),
                name: key_ref.name.clone(),
                key: key_ref.key.clone(),
            }),
        };
    }
    Ok(Some(String::new()))
}

/// A pod field by its path (see the [module docs](self)); also `metadata.labels` and
/// `metadata.annotations` as a whole, in the downward API's `key="value"` lines. `None` for
/// a path the agent does not know.
pub fn field_value(ctx: &PodContext<'_>, path: &str) -> Option<String> {
    let pod = ctx.pod;
    let meta = &pod.metadata;
    let one_key = |prefix: &str, map: &BTreeMap<String, String>| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(|key| map.get(key).cloned().unwrap_or_default())
    };
    if let Some(value) = one_key("metadata.labels['", &meta.labels)
        .or_else(|| one_key("metadata.annotations['", &meta.annotations))
    {
        return Some(value);
    }
    Some(match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        "spec.nodeName" => pod.spec.node_name.clone(),
        "spec.serviceAccountName" => pod.spec.service_account_name.clone(),
        "status.podIP" => ctx.pod_ip.to_owned(),
        "status.hostIP" => ctx.host_ip.to_owned(),
        _ => return None,
    })
}

/// Labels or annotations as the downward API writes them: `key="value"` lines, sorted, the
/// value quoted with `"` and `\` escaped and control characters as escapes.
fn format_map(map: &BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A container's resource limit or request (`limits.cpu`, `requests.memory`, ...) in units
/// of the selector's divisor, rounded up. The container is the selector's `containerName`,
/// else `own`.
pub fn resource_value(
    ctx: &PodContext<'_>,
    own: Option<&Container>,
    selector: &ResourceFieldSelector,
) -> Result<String, ConfigError> {
    let pod = ctx.pod;
    let container = if selector.container_name.is_empty() {
        own
    } else {
        pod.spec
            .containers
            .iter()
            .chain(&pod.spec.init_containers)
            .find(|c| c.name == selector.container_name)
    };
    let Some(container) = container else {
        return Err(ConfigError::Unsupported(format!(
            "resourceFieldRef: container {:?} not found in the pod",
            selector.container_name
        )));
    };
    let unsupported = || {
        ConfigError::Unsupported(format!(
            "unsupported resourceFieldRef resource {:?}",
            selector.resource
        ))
    };
    let (list, resource) = selector.resource.split_once('.').ok_or_else(unsupported)?;
    let resources = &container.resources;
    let amount = match list {
        "limits" => resources.limits.get(resource).copied().or(match resource {
            "cpu" => Some(ctx.node_cpu),
            "memory" => Some(ctx.node_memory),
            _ => None,
        }),
        "requests" => resources.requests.get(resource).copied(),
        _ => return Err(unsupported()),
    }
    .unwrap_or_default();
    let divisor = selector.divisor.unwrap_or_else(|| Quantity::from_value(1));
    let (amount, unit) = match resource {
        "cpu" => (amount.milli_value(), divisor.milli_value()),
        "memory" | "ephemeral-storage" => (amount.value(), divisor.value()),
        _ => return Err(unsupported()),
    };
    let unit = u64::try_from(unit).ok().filter(|u| *u > 0).ok_or_else(|| {
        ConfigError::Unsupported(format!(
            "resourceFieldRef divisor {divisor} must be positive"
        ))
    })?;
    // Validation keeps amounts non-negative.
    let amount = u64::try_from(amount).unwrap_or(0);
    Ok(amount.div_ceil(unit).to_string())
}

/// `command` and `args` with their `$(VAR)` references expanded against `env`.
pub fn expand_command(
    container: &Container,
    env: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| vars.get(name).map(|v| (*v).to_owned());
    let each = |list: &[String]| list.iter().map(|s| expand(s, lookup)).collect();
    (each(&container.command), each(&container.args))
}

#[cfg(test)]
mod tests;
