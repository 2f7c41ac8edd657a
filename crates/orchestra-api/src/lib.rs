//! orchestra's API model: the Kubernetes-shaped resources every orchestra component reads and
//! writes, and everything about them that needs no server: quantities, selectors,
//! validation, defaulting, manifests, and the [`Scheme`] where an embedding program registers
//! its own kinds next to the built-in ones.
//!
//! The shapes and JSON names are Kubernetes' (`apiVersion`, `kind`, `metadata`, `spec`,
//! `status`, camelCase), so manifests written for Kubernetes read unchanged, and a field
//! orchestra does not know is reported by its path, never silently dropped.
//!
//! ```
//! use orchestra_api::manifest::{self, ManifestOptions};
//! use orchestra_api::resources::{Deployment, Service};
//! use orchestra_api::{Quantity, Resource, Scheme};
//!
//! let yaml = r#"
//! apiVersion: v1
//! kind: Service
//! metadata: {name: web}
//! spec:
//!   selector: {app: web}
//!   ports: [{name: http, port: 80, targetPort: http}]
//! ---
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata: {name: web}
//! spec:
//!   replicas: 3
//!   selector: {matchLabels: {app: web}}
//!   template:
//!     metadata: {labels: {app: web}}
//!     spec:
//!       containers:
//!       - name: web
//!         image: nginx:1.27
//!         ports: [{name: http, containerPort: 8080}]
//!         resources:
//!           requests: {cpu: 250m, memory: 64Mi}
//! "#;
//! let scheme = Scheme::new();
//! let options = ManifestOptions { apply_defaults: true, ..ManifestOptions::default() };
//! let parsed = manifest::parse(&scheme, yaml, &options)?;
//! assert_eq!(parsed.len(), 2);
//!
//! let web: &Deployment = parsed.objects_of::<Deployment>().next().unwrap();
//! assert_eq!(web.metadata.namespace, "default");
//! let cpu = &web.spec.template.spec.containers[0].resources.requests["cpu"];
//! assert_eq!(cpu.milli_value() * 3, Quantity::parse("750m").unwrap().milli_value());
//! let service: &Service = parsed.objects_of::<Service>().next().unwrap();
//! assert!(service.validate().is_empty());
//! # Ok::<(), orchestra_api::manifest::ManifestError>(())
//! ```
//!
//! # Layout
//! - [`meta`]: [`ObjectMeta`], [`TypeMeta`], [`OwnerReference`], [`LabelSelector`],
//!   [`Time`] / [`MicroTime`], [`IntOrString`].
//! - [`quantity`]: [`Quantity`], exact resource amounts (`500m`, `1Gi`) with arithmetic.
//! - [`resources`]: the built-in kinds: Namespace, Node, Pod, Service, Endpoints, Event,
//!   ConfigMap, Secret (`v1`), ReplicaSet, Deployment, DaemonSet, StatefulSet, ControllerRevision
//!   (`apps/v1`), Job (`batch/v1`), Lease (`coordination.k8s.io/v1`), Role, ClusterRole, RoleBinding,
//!   ClusterRoleBinding (`rbac.authorization.k8s.io/v1`), ServiceAccount (`v1`), PodGroup
//!   (`scheduling.x-k8s.io/v1alpha1`, gangs for the scheduler), TrafficSplit
//!   (`mesh.orchestra.dev/v1alpha1`).
//! - [`resource`]: the [`Resource`] trait (identity, metadata, defaulting and validation
//!   hooks) that built-in and custom kinds implement.
//! - [`scheme`]: the [`Scheme`] registry of kinds and their type-erased [`KindCodec`]s;
//!   objects of any kind as `Box<dyn DynResource>`.
//! - [`codec`]: JSON with `apiVersion`/`kind` ([`to_value`], [`decode`]), reporting
//!   unknown fields and bad values by path.
//! - [`manifest`]: multi-document YAML/JSON manifests, with warnings or `strict` errors.
//! - [`validation`]: Kubernetes-style field errors ([`ErrorList`]) and the checks of every
//!   kind; [`validation::names`] for DNS names, label syntax, ports and IPs.
//! - [`defaulting`]: the defaults Kubernetes fills in (restartPolicy, 25%/25% rollouts, TCP,
//!   ...).
//! - [`selector`]: label selectors ([`Selector`]) and field selectors ([`FieldSelector`]).
//! - [`registry`]: the [`Registry`]: typed objects over any `orchestra_store::Store`
//!   (create, get, list, update, status, patch, delete with finalizers, bind, watch), and
//!   [`ApiError`].
//! - [`admission`]: the [`admission::Admission`] chain of mutating and validating plug-ins
//!   every write passes (NamespaceLifecycle, DefaultTolerationSeconds, Service cluster IP and
//!   node port allocation, and an embedder's own).
//! - [`apply`]: [`apply::three_way_merge`], client-side apply's merge of the last-applied
//!   manifest, the new manifest and the live object (strategic for keyed lists).
//! - [`auth`]: [`auth::UserInfo`], [`auth::RequestAttributes`], the [`auth::Authorizer`] and
//!   [`auth::AuditSink`] traits: the contract between authentication, authorization and audit.
//! - [`client`]: the [`Client`] trait and [`LocalClient`], in process over a [`Registry`].
//! - [`io`]: [`io::PrefixedIo`], a stream with bytes already read put back in front.
//! - [`events`]: [`events::EventRecorder`], recording Events from components with
//!   Kubernetes' deduplication (count, lastTimestamp) and aggregation of similar events.
//! - [`logs`]: container logs (`pods/log`): [`logs::PodLogOptions`], the choice of
//!   container and node, the node agent's request, the [`logs::NodeConnector`] hop to agents.
//! - [`testing`]: the client conformance suite, for every [`Client`] implementation.
//! - [`watch_cache`]: per kind, one store watch fanned out to every watch of the process,
//!   indexed by the field values watches require (pods by `spec.nodeName`); behind
//!   [`LocalClient`]'s watches and the API server's.
//! - [`watcher`]: list then watch one kind as a stream of [`watcher::Event`]s that resumes
//!   after disconnects, re-lists on 410 and backs off after failures.
//! - [`reflector`]: a cache fed by a watcher: one writer, cloneable [`reflector::Store`]
//!   readers with secondary indexes and `wait_until_ready`.
//! - `server` (feature `server`): the API server, gRPC and HTTP/JSON (Kubernetes' REST
//!   paths) on one address, with `/healthz`, `/readyz` and `/metrics`.
//! - `tls` (feature `tls`, part of `server` and `remote`): the cluster CA and the
//!   certificates it issues, credentials files, join tokens, rustls configurations.
//! - `remote` (feature `remote`): `RemoteClient`, the [`Client`] over the server's gRPC API.
//! - `wire` (feature `server` or `remote`): the gRPC messages and Kubernetes' `Status`, which
//!   carries an [`ApiError`] over both protocols.

pub mod admission;
pub mod apply;
pub mod auth;
pub mod client;
pub mod codec;
pub mod defaulting;
pub mod encryption;
pub mod events;
pub mod io;
pub mod logs;
pub mod manifest;
pub mod meta;
pub mod quantity;
pub mod reflector;
pub mod registry;
#[cfg(feature = "remote")]
pub mod remote;
pub mod resource;
pub mod resources;
pub mod scheme;
pub mod selector;
#[cfg(feature = "server")]
pub mod server;
pub mod testing;
#[cfg(feature = "tls")]
pub mod tls;
pub mod validation;
pub mod watch_cache;
pub mod watcher;
#[cfg(any(feature = "server", feature = "remote"))]
pub mod wire;

pub use client::{Client, LocalClient};
pub use codec::{DecodeError, Decoded, Typed, decode, decode_body, to_string, to_value};
pub use meta::{
    IntOrString, LabelSelector, LabelSelectorOperator, LabelSelectorRequirement, MicroTime,
    ObjectMeta, OwnerReference, Time, TypeMeta,
};
pub use quantity::{Format, Quantity, QuantityError};
pub use registry::{ApiError, Registry, WatchEvent};
#[cfg(feature = "remote")]
pub use remote::RemoteClient;
pub use resource::{NameRule, Resource, TypeInfo};
pub use scheme::{
    DecodedObject, DynResource, EncodeError, KindCodec, Scheme, SchemeError, erase, erase_arc,
};
pub use selector::{FieldSelector, Selector, SelectorError};
pub use validation::{ErrorList, ErrorType, FieldError, FieldPath};
