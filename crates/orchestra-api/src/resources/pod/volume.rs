//! A pod's volumes ([`Volume`], one source each) and where containers mount them
//! ([`VolumeMount`]), plus the environment sources that read whole ConfigMaps and Secrets
//! ([`EnvFromSource`]).
//!
//! File modes (`defaultMode`, `mode`) read as Kubernetes manifests write them: `0440`
//! (octal, as YAML 1.1 has it), `0o440` or `288`; see `resources::file_mode`.

use serde::{Deserialize, Serialize};

use crate::quantity::Quantity;
use crate::resources::pod::container::{ObjectFieldSelector, ResourceFieldSelector};

/// The file mode of projected files (ConfigMap, Secret, downward API) when a volume sets
/// none: `0644`.
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;

/// A named volume of a pod (Kubernetes' `v1.Volume`): exactly one source is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Volume {
    /// The volume's name, a DNS label unique within the pod; mounts refer to it.
    pub name: String,
    /// A directory that lives as long as the pod, empty at first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// The entries of a ConfigMap, as files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    /// The entries of a Secret, as files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretVolumeSource>,
    /// A file or directory of the node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    /// Fields of the pod (labels, annotations, name...) and container resources, as files.
    #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
    pub downward_api: Option<DownwardApiVolumeSource>,
    /// ConfigMaps, Secrets and downward API files together in one directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projected: Option<ProjectedVolumeSource>,
}

impl Volume {
    /// How many sources are set (valid when exactly one).
    pub fn source_count(&self) -> usize {
        usize::from(self.empty_dir.is_some())
            + usize::from(self.config_map.is_some())
            + usize::from(self.secret.is_some())
            + usize::from(self.host_path.is_some())
            + usize::from(self.downward_api.is_some())
            + usize::from(self.projected.is_some())
    }
}

/// An emptyDir volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EmptyDirVolumeSource {
    /// The storage medium: empty for the node's disk, `Memory` for tmpfs (the node agent
    /// keeps both on disk).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub medium: String,
    /// The most the volume may hold (informational here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Quantity>,
}

/// One entry of a ConfigMap, Secret or projected volume as a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyToPath {
    /// The entry's key.
    pub key: String,
    /// The file's path, relative to the volume, without `..`.
    pub path: String,
    /// The file's mode (`0` to `0777`); the volume's `defaultMode` when unset.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::resources::file_mode::deserialize"
    )]
    pub mode: Option<i32>,
}

/// A ConfigMap as a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapVolumeSource {
    /// The ConfigMap, in the pod's namespace.
    pub name: String,
    /// The entries to project and where; every entry under its key when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    /// The files' mode (`0644` by default).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::resources::file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
    /// Whether the volume may be empty when the ConfigMap or a key is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A Secret as a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretVolumeSource {
    /// The Secret, in the pod's namespace.
    pub secret_name: String,
    /// The entries to project and where; every entry under its key when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    /// The files' mode (`0644` by default).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::resources::file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
    /// Whether the volume may be empty when the Secret or a key is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// What a hostPath volume's path must be (Kubernetes' `HostPathType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HostPathType {
    /// No check (the default, written `""`).
    #[serde(rename = "")]
    Unset,
    /// A directory, created (mode 0755) when absent.
    DirectoryOrCreate,
    /// An existing directory.
    Directory,
    /// A file, created empty (mode 0644) when absent.
    FileOrCreate,
    /// An existing file.
    File,
    /// An existing UNIX socket.
    Socket,
    /// An existing character device.
    CharDevice,
    /// An existing block device.
    BlockDevice,
}

/// A path of the node as a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostPathVolumeSource {
    /// The path on the node.
    pub path: String,
    /// What the path must be; unchecked when unset.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<HostPathType>,
}

/// Pod fields as files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownwardApiVolumeSource {
    /// The files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<DownwardApiVolumeFile>,
    /// The files' mode (`0644` by default).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::resources::file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
}

/// One file of a downward API volume: exactly one of `fieldRef` and `resourceFieldRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownwardApiVolumeFile {
    /// The file's path, relative to the volume, without `..`.
    pub path: String,
    /// A field of the pod: `metadata.name`, `metadata.namespace`, `metadata.uid`,
    /// `metadata.labels`, `metadata.annotations` or one label or annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<ObjectFieldSelector>,
    /// A container's resource limit or request (`containerName` is required here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_field_ref: Option<ResourceFieldSelector>,
    /// The file's mode; the volume's `defaultMode` when unset.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::resources::file_mode::deserialize"
    )]
    pub mode: Option<i32>,
}

/// A projected volume: the files of several sources in one directory (Kubernetes'
/// `ProjectedVolumeSource`). Paths must not collide across sources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProjectedVolumeSource {
    /// The sources, each with exactly one field set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<VolumeProjection>,
    /// The files' mode (`0644` by default); an item's `mode` wins.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::resources::file_mode::deserialize"
    )]
    pub default_mode: Option<i32>,
}

/// One source of a projected volume: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeProjection {
    /// Entries of a ConfigMap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapProjection>,
    /// Entries of a Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretProjection>,
    /// Fields of the pod and container resources.
    #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
    pub downward_api: Option<DownwardApiProjection>,
    /// A token of the pod's service account, bound to the pod, kept fresh by the node agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_token: Option<ServiceAccountTokenProjection>,
}

impl VolumeProjection {
    /// How many sources are set (valid when exactly one).
    pub fn source_count(&self) -> usize {
        usize::from(self.config_map.is_some())
            + usize::from(self.secret.is_some())
            + usize::from(self.downward_api.is_some())
            + usize::from(self.service_account_token.is_some())
    }
}

/// A ConfigMap's entries in a projected volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMapProjection {
    /// The ConfigMap, in the pod's namespace.
    pub name: String,
    /// The entries to project and where; every entry under its key when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    /// Whether the ConfigMap or a key may be missing (its files are then left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A Secret's entries in a projected volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretProjection {
    /// The Secret, in the pod's namespace.
    pub name: String,
    /// The entries to project and where; every entry under its key when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<KeyToPath>,
    /// Whether the Secret or a key may be missing (its files are then left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// Downward API files in a projected volume.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DownwardApiProjection {
    /// The files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<DownwardApiVolumeFile>,
}

/// A service account token in a projected volume: the node agent has it issued for the
/// pod's account, bound to the pod, and renews it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAccountTokenProjection {
    /// The token's intended audience.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub audience: String,
    /// How long the token is valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i64>,
    /// The file's path in the volume.
    pub path: String,
}

/// Where a container mounts a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeMount {
    /// The volume's name in `spec.volumes`.
    pub name: String,
    /// The absolute path in the container.
    pub mount_path: String,
    /// Mount read-only (ConfigMap, Secret and downward API volumes always are).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// A path inside the volume to mount instead of its root (relative, without `..`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub_path: String,
    /// Like `subPath`, with `$(VAR)` references to the container's environment expanded when
    /// it starts (a variable that is not defined, or empty, is an error). Exclusive with
    /// `subPath`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub_path_expr: String,
}

/// Every entry of a ConfigMap or Secret as environment variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromSource {
    /// Put before each key to form the variable's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// A ConfigMap's entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<EnvFromRef>,
    /// A Secret's entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<EnvFromRef>,
}

/// The ConfigMap or Secret of an [`EnvFromSource`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromRef {
    /// Its name, in the pod's namespace.
    pub name: String,
    /// Whether the container may start without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

#[cfg(test)]
mod tests {
    use crate::resources::Pod;

    /// A manifest as a Kubernetes user writes it: every volume kind, mounts and envFrom.
    const MANIFEST: &str = r#"{
      "apiVersion": "v1", "kind": "Pod",
      "metadata": {"name": "web", "namespace": "default"},
      "spec": {
        "containers": [{
          "name": "web", "image": "busybox",
          "envFrom": [
            {"configMapRef": {"name": "settings"}},
            {"prefix": "DB_", "secretRef": {"name": "db", "optional": true}}
          ],
          "volumeMounts": [
            {"name": "creds", "mountPath": "/etc/creds", "readOnly": true},
            {"name": "scratch", "mountPath": "/scratch", "subPath": "web"}
          ]
        }],
        "volumes": [
          {"name": "creds", "secret": {"secretName": "db", "defaultMode": 256,
            "items": [{"key": "password", "path": "db/password", "mode": 384}]}},
          {"name": "settings", "configMap": {"name": "settings", "optional": true}},
          {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
          {"name": "logs", "hostPath": {"path": "/var/log", "type": "DirectoryOrCreate"}},
          {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "web",
              "resource": "limits.cpu", "divisor": "1m"}}
          ]}}
        ]
      }
    }"#;

    #[test]
    fn volumes_mounts_and_env_from_round_trip_in_kubernetes_camel_case() {
        let pod: Pod = serde_json::from_str(MANIFEST).expect("parses");
        let spec = &pod.spec;
        let secret = spec.volumes[0].secret.as_ref().unwrap();
        assert_eq!(secret.secret_name, "db");
        assert_eq!(secret.default_mode, Some(0o400));
        assert_eq!(secret.items[0].path, "db/password");
        assert_eq!(secret.items[0].mode, Some(0o600));
        assert_eq!(
            spec.volumes[1].config_map.as_ref().unwrap().optional,
            Some(true)
        );
        assert_eq!(
            spec.volumes[3].host_path.as_ref().unwrap().type_,
            Some(super::HostPathType::DirectoryOrCreate)
        );
        let downward = spec.volumes[4].downward_api.as_ref().unwrap();
        assert_eq!(
            downward.items[1]
                .resource_field_ref
                .as_ref()
                .unwrap()
                .divisor
                .map(|d| d.milli_value()),
            Some(1)
        );
        let container = &spec.containers[0];
        assert_eq!(container.env_from[1].prefix, "DB_");
        assert_eq!(container.volume_mounts[1].sub_path, "web");
        assert!(container.volume_mounts[0].read_only);
        assert!(spec.volumes.iter().all(|v| v.source_count() == 1));

        let json = serde_json::to_value(&pod).unwrap();
        let original: serde_json::Value = serde_json::from_str(MANIFEST).unwrap();
        assert_eq!(json["spec"]["volumes"], original["spec"]["volumes"]);
        assert_eq!(
            json["spec"]["containers"][0]["volumeMounts"],
            original["spec"]["containers"][0]["volumeMounts"]
        );
        assert_eq!(
            json["spec"]["containers"][0]["envFrom"],
            original["spec"]["containers"][0]["envFrom"]
        );
        let again: Pod = serde_json::from_value(json).unwrap();
        assert_eq!(again, pod);
    }

    #[test]
    fn an_unknown_host_path_type_is_refused_by_name() {
        let err = serde_json::from_str::<super::HostPathVolumeSource>(
            r#"{"path": "/x", "type": "Pipe"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("Pipe"), "{err}");
    }
}
