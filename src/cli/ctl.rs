//! `orchestra ctl`: kubectl's habits against an orchestra API server, over `RemoteClient`.
//! `apply -f FILE|DIR|-` creates each object of a manifest or replaces it when it exists;
//! `get KIND [NAME]` prints kubectl-like tables (or JSON, YAML).
//!
//! The table and age formatting are pure functions, tested without a server.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use orchestra_api::manifest::{self, ManifestOptions};
use orchestra_api::registry::ListOptions;
use orchestra_api::remote::ConnectError;
use orchestra_api::{ApiError, RemoteClient, Scheme, Selector, Time, TypeInfo};
use serde_json::{Value, json};

/// `orchestra ctl [--server URL] COMMAND`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The API server.
    #[arg(
        long,
        env = "ORCHESTRA_SERVER",
        default_value = "http://127.0.0.1:7443",
        global = true
    )]
    pub server: String,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// The `ctl` verbs.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Create the objects of manifests, or replace those that exist.
    Apply(ApplyArgs),
    /// Show objects of one kind.
    Get(GetArgs),
}

/// `apply -f FILE|DIR|- [--strict]`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A YAML or JSON manifest, a directory of them (`.yaml`, `.yml`, `.json`), or `-` for
    /// stdin; repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Unknown fields are errors instead of warnings.
    #[arg(long)]
    pub strict: bool,
}

/// `get KIND [NAME] [-n NS | -A] [-l SEL] [-o wide|json|yaml]`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The kind: `pods`, `pod`, `po`, `deployments`, `deploy`, `nodes`, ...
    pub kind: String,
    /// One object's name (default: list them).
    pub name: Option<String>,
    /// The namespace.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_namespaces: bool,
    /// A label selector: `app=web`, `tier in (a,b)`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// The output format (default: a table).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

/// How `get` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The table with more columns.
    Wide,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Why a `ctl` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The server could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The server refused a request.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The server's error.
        #[source]
        source: ApiError,
    },
    /// A manifest could not be read.
    #[error("reading {path} failed: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is malformed.
    #[error("{path}: {source}")]
    Manifest {
        /// The file.
        path: String,
        /// Every document's error.
        #[source]
        source: manifest::ManifestError,
    },
    /// Anything else the user gave that is wrong (a kind, a selector).
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("writing the output failed: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs a `ctl` command, printing to stdout (warnings to stderr).
pub async fn run(args: CtlArgs) -> Result<(), CtlError> {
    let client = RemoteClient::connect(&args.server).await?;
    let mut out = std::io::stdout().lock();
    match args.command {
        CtlCommand::Apply(apply_args) => apply(&client, &apply_args, &mut out).await,
        CtlCommand::Get(get_args) => get(&client, &get_args, &mut out).await,
    }
}

async fn apply(
    client: &RemoteClient,
    args: &ApplyArgs,
    out: &mut impl Write,
) -> Result<(), CtlError> {
    let scheme = Scheme::new();
    let options = ManifestOptions {
        strict: args.strict,
        ..ManifestOptions::default()
    };
    for (path, text) in read_manifests(&args.files)? {
        let parsed =
            manifest::parse(&scheme, &text, &options).map_err(|source| CtlError::Manifest {
                path: path.clone(),
                source,
            })?;
        for warning in parsed.warnings() {
            eprintln!("warning: {path}: {warning}");
        }
        for item in &parsed.objects {
            let info = item.object.type_info();
            let mut value = item
                .object
                .to_json()
                .map_err(|err| CtlError::Usage(format!("{path}: {}: {err}", item.location)))?;
            let name = item.object.meta().name.clone();
            let label = format!("{}/{name}", info.kind.to_lowercase());
            let what = |verb: &str| format!("{verb} {label} ({path}, {})", item.location);
            match client.create_json(&value).await {
                Ok(_) => writeln!(out, "{label} created")?,
                Err(ApiError::AlreadyExists { .. }) => {
                    let namespace = match item.object.meta().namespace.as_str() {
                        "" if info.namespaced => "default",
                        ns => ns,
                    };
                    let current = client
                        .get_json(info.api_version, info.kind, namespace, &name)
                        .await
                        .map_err(|source| CtlError::Api {
                            what: what("reading"),
                            source,
                        })?;
                    let rv = current["metadata"]["resourceVersion"].clone();
                    value["metadata"]["resourceVersion"] = rv.clone();
                    let updated =
                        client
                            .update_json(&value)
                            .await
                            .map_err(|source| CtlError::Api {
                                what: what("updating"),
                                source,
                            })?;
                    let verb = if updated["metadata"]["resourceVersion"] == rv {
                        "unchanged"
                    } else {
                        "configured"
                    };
                    writeln!(out, "{label} {verb}")?;
                }
                Err(source) => {
                    return Err(CtlError::Api {
                        what: what("creating"),
                        source,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The manifests named on the command line, as (name, text); a directory's files in name
/// order.
fn read_manifests(files: &[PathBuf]) -> Result<Vec<(String, String)>, CtlError> {
    let read_error = |path: &Path, source| CtlError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut manifests = Vec::new();
    for file in files {
        if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| read_error(file, e))?;
            manifests.push(("<stdin>".to_owned(), text));
        } else if file.is_dir() {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(file)
                .map_err(|e| read_error(file, e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            paths.sort();
            for path in paths {
                let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
                manifests.push((path.display().to_string(), text));
            }
        } else {
            let text = std::fs::read_to_string(file).map_err(|e| read_error(file, e))?;
            manifests.push((file.display().to_string(), text));
        }
    }
    Ok(manifests)
}

/// The kind a command-line name means: its plural, kind or short name, any case.
pub fn resolve_kind(scheme: &Scheme, name: &str) -> Option<TypeInfo> {
    let name = name.to_lowercase();
    let short = match name.as_str() {
        "po" => "pods",
        "no" => "nodes",
        "svc" => "services",
        "deploy" => "deployments",
        "rs" => "replicasets",
        "ns" => "namespaces",
        "ep" => "endpoints",
        "ev" => "events",
        other => other,
    };
    scheme
        .kinds()
        .map(|codec| codec.info())
        .find(|info| info.plural == short || info.kind.to_lowercase() == short)
}

async fn get(client: &RemoteClient, args: &GetArgs, out: &mut impl Write) -> Result<(), CtlError> {
    let scheme = Scheme::new();
    let info = resolve_kind(&scheme, &args.kind).ok_or_else(|| {
        let known: Vec<&str> = scheme.kinds().map(|c| c.info().plural).collect();
        CtlError::Usage(format!(
            "unknown kind {:?}: use one of {}",
            args.kind,
            known.join(", ")
        ))
    })?;
    let api = |what: String| move |source| CtlError::Api { what, source };
    let objects = match &args.name {
        Some(name) => vec![
            client
                .get_json(info.api_version, info.kind, &args.namespace, name)
                .await
                .map_err(api(format!("getting {} {name}", info.kind)))?,
        ],
        None => {
            let label_selector = match &args.selector {
                Some(text) => Selector::parse(text)
                    .map_err(|err| CtlError::Usage(format!("-l {text:?}: {err}")))?,
                None => Selector::everything(),
            };
            let namespace =
                (info.namespaced && !args.all_namespaces).then_some(args.namespace.as_str());
            client
                .list_json(
                    info.api_version,
                    info.kind,
                    namespace,
                    &ListOptions::labels(label_selector),
                )
                .await
                .map_err(api(format!("listing {}", info.plural)))?
                .items
        }
    };
    match args.output {
        Some(Output::Json) => {
            let value = single_or_list(objects, args.name.is_some());
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            )?;
        }
        Some(Output::Yaml) => {
            let value = single_or_list(objects, args.name.is_some());
            let text = serde_yaml_ng::to_string(&value)
                .map_err(|err| CtlError::Usage(format!("YAML output failed: {err}")))?;
            write!(out, "{text}")?;
        }
        Some(Output::Wide) | None => {
            if objects.is_empty() {
                match info.namespaced && !args.all_namespaces {
                    true => eprintln!("No resources found in {} namespace.", args.namespace),
                    false => eprintln!("No resources found"),
                }
                return Ok(());
            }
            let now = Time::now().as_second();
            let rows = table(
                &info,
                &objects,
                args.all_namespaces && info.namespaced,
                args.output == Some(Output::Wide),
                now,
            );
            write!(out, "{}", render(&rows))?;
        }
    }
    Ok(())
}

fn single_or_list(mut objects: Vec<Value>, single: bool) -> Value {
    if single && objects.len() == 1 {
        objects.remove(0)
    } else {
        json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": objects})
    }
}

/// kubectl's ages: `45s`, `5m`, `3h`, `2d`.
pub fn age(created: Option<&str>, now: i64) -> String {
    let Some(created) = created.and_then(|t| t.parse::<Time>().ok()) else {
        return "<unknown>".to_owned();
    };
    let seconds = (now - created.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The table of `get`: a header row, then one row per object.
pub fn table(
    info: &TypeInfo,
    objects: &[Value],
    namespace_column: bool,
    wide: bool,
    now: i64,
) -> Vec<Vec<String>> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut header: Vec<&str> = match info.kind {
        "Pod" => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE"],
        "Node" => vec!["NAME", "STATUS", "AGE"],
        "Deployment" | "ReplicaSet" => vec!["NAME", "READY", "AVAILABLE", "AGE"],
        _ => vec!["NAME", "AGE"],
    };
    if wide && info.kind == "Pod" {
        header.push("IP");
    }
    if namespace_column {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for object in objects {
        let meta = &object["metadata"];
        let status = &object["status"];
        let age = age(meta["creationTimestamp"].as_str(), now);
        let mut row = vec![text(&meta["name"])];
        match info.kind {
            "Pod" => {
                let containers = object["spec"]["containers"].as_array().map_or(0, Vec::len);
                let statuses = status["containerStatuses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let ready = statuses.iter().filter(|s| s["ready"] == true).count();
                let restarts: i64 = statuses
                    .iter()
                    .filter_map(|s| s["restartCount"].as_i64())
                    .sum();
                let phase = if meta["deletionTimestamp"].is_string() {
                    "Terminating".to_owned()
                } else {
                    status["phase"].as_str().unwrap_or("Pending").to_owned()
                };
                let node = match object["spec"]["nodeName"].as_str() {
                    Some(node) if !node.is_empty() => node.to_owned(),
                    _ => "<none>".to_owned(),
                };
                row.extend([
                    format!("{ready}/{containers}"),
                    phase,
                    restarts.to_string(),
                    age,
                    node,
                ]);
                if wide {
                    row.push(status["podIP"].as_str().unwrap_or("<none>").to_owned());
                }
            }
            "Node" => {
                let ready = status["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .is_some_and(|c| c["status"] == "True");
                let mut state = if ready { "Ready" } else { "NotReady" }.to_owned();
                if object["spec"]["unschedulable"] == true {
                    state.push_str(",SchedulingDisabled");
                }
                row.extend([state, age]);
            }
            "Deployment" | "ReplicaSet" => {
                let want = object["spec"]["replicas"].as_i64().unwrap_or(1);
                let ready = status["readyReplicas"].as_i64().unwrap_or(0);
                let available = status["availableReplicas"].as_i64().unwrap_or(0);
                row.extend([format!("{ready}/{want}"), available.to_string(), age]);
            }
            _ => row.push(age),
        }
        if namespace_column {
            row.insert(0, text(&meta["namespace"]));
        }
        rows.push(row);
    }
    rows
}

/// Rows as aligned columns, three spaces apart, as kubectl prints them.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_by_plural_kind_and_short_name() {
        let scheme = Scheme::new();
        for name in ["pods", "Pod", "po", "POD"] {
            assert_eq!(
                resolve_kind(&scheme, name).map(|i| i.kind),
                Some("Pod"),
                "{name}"
            );
        }
        assert_eq!(
            resolve_kind(&scheme, "deploy").map(|i| i.api_version),
            Some("apps/v1")
        );
        assert_eq!(resolve_kind(&scheme, "widgets"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        let t0: Time = "2026-01-01T00:00:00Z".parse().expect("time");
        let at = |s: i64| t0.as_second() + s;
        let created = Some("2026-01-01T00:00:00Z");
        assert_eq!(age(created, at(45)), "45s");
        assert_eq!(age(created, at(5 * 60)), "5m");
        assert_eq!(age(created, at(3 * 3600)), "3h");
        assert_eq!(age(created, at(3 * 86400)), "3d");
        assert_eq!(age(None, at(0)), "<unknown>");
    }

    #[test]
    fn pod_tables_have_kubectls_columns() {
        let info = <orchestra_api::resources::Pod as orchestra_api::Resource>::type_info();
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}, {"ready": false, "restartCount": 1}]},
        });
        let now: Time = "2026-01-01T00:00:30Z".parse().expect("time");
        let rows = table(&info, &[pod], true, false, now.as_second());
        assert_eq!(
            render(&rows),
            "NAMESPACE   NAME    READY   STATUS    RESTARTS   AGE   NODE\n\
             shop        web-1   1/2     Running   3          30s   node-1\n"
        );
    }
}
