//! `orchestra ctl get | describe | delete`.

use std::io::Write;

use futures::StreamExt;
use jiff::Timestamp;
use orchestra::api::meta::Time;
use orchestra::api::registry::{DeleteOptions, DeleteOutcome, ListOptions, WatchOptions};
use orchestra::api::resources::Event;
use orchestra::api::{Client, FieldSelector, Resource, Selector, WatchEvent, to_value};
use serde_json::{Value, json};

use super::kind::{Kind, with_kind};
use super::table::{Tabular, age, align, human_duration, render};
use super::{CtlError, Output, Scope};

/// What `ctl get` was asked.
#[derive(Clone, Debug)]
pub struct GetRequest {
    /// The kind.
    pub kind: Kind,
    /// One object, or every object in scope.
    pub name: Option<String>,
    /// The namespaces.
    pub scope: Scope,
    /// `-l`: a label selector.
    pub selector: Option<String>,
    /// `-o`.
    pub output: Output,
    /// `-w`: after the list, print each change until the watch ends.
    pub watch: bool,
}

/// `ctl get`.
pub async fn get<C: Client>(
    client: &C,
    request: &GetRequest,
    now: Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CtlError> {
    with_kind!(request.kind, R => get_kind::<C, R>(client, request, now, out, err).await)
}

async fn get_kind<C: Client, R: Tabular>(
    client: &C,
    request: &GetRequest,
    now: Timestamp,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CtlError> {
    let selector = match &request.selector {
        Some(text) => text
            .parse::<Selector>()
            .map_err(|source| CtlError::Selector {
                selector: text.clone(),
                source,
            })?,
        None => Selector::default(),
    };
    let namespace = match (&request.scope, R::NAMESPACED) {
        (Scope::Namespace(ns), true) => Some(ns.as_str()),
        _ => None,
    };
    let wide = request.output == Output::Wide;
    let with_namespace = R::NAMESPACED && request.scope == Scope::All;
    if let Some(name) = &request.name {
        let object: R = client
            .get(request.scope.namespace(), name)
            .await
            .map_err(|e| CtlError::api(format!("getting {} {name:?}", R::KIND), e))?;
        let one = std::slice::from_ref(&object);
        return print_objects(one, false, false, request.output, now, out);
    }
    let list = client
        .list::<R>(namespace, &ListOptions::labels(selector.clone()))
        .await
        .map_err(|e| CtlError::api(format!("listing {}", R::PLURAL), e))?;
    if list.items.is_empty() && !request.watch {
        match namespace {
            Some(ns) => writeln!(err, "No resources found in {ns} namespace.")?,
            None => writeln!(err, "No resources found")?,
        }
        return Ok(());
    }
    print_objects(&list.items, true, with_namespace, request.output, now, out)?;
    if !request.watch {
        return Ok(());
    }
    let options = WatchOptions {
        label_selector: selector,
        resource_version: Some(list.resource_version.clone()),
        ..WatchOptions::default()
    };
    let mut events = client
        .watch::<R>(namespace, &options)
        .await
        .map_err(|e| CtlError::api(format!("watching {}", R::PLURAL), e))?;
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| CtlError::api(format!("watching {}", R::PLURAL), e))?;
        let object = match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                std::sync::Arc::unwrap_or_clone(o)
            }
            WatchEvent::Bookmark(_) => continue,
        };
        match request.output {
            Output::Table | Output::Wide => {
                let table = render(std::slice::from_ref(&object), now, wide, with_namespace);
                // The header was printed with the list.
                out.write_all(table.lines().nth(1).unwrap_or_default().as_bytes())?;
                out.write_all(b"\n")?;
            }
            output => {
                let one = std::slice::from_ref(&object);
                print_objects(one, false, with_namespace, output, now, out)?
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// Print objects in the requested form; `as_list` wraps JSON and YAML in a `List`, and
/// `with_namespace` adds a NAMESPACE column to tables.
fn print_objects<R: Tabular>(
    objects: &[R],
    as_list: bool,
    with_namespace: bool,
    output: Output,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    match output {
        Output::Table | Output::Wide => {
            out.write_all(render(objects, now, output == Output::Wide, with_namespace).as_bytes())?;
        }
        Output::Json | Output::Yaml => {
            let mut values = Vec::with_capacity(objects.len());
            for object in objects {
                values.push(encode(object)?);
            }
            let document = match (as_list, values.len()) {
                (false, 1) => values.remove(0),
                _ => json!({"apiVersion": "v1", "kind": "List", "items": values}),
            };
            let text = if output == Output::Json {
                serde_json::to_string_pretty(&document)
                    .map(|t| t + "\n")
                    .map_err(|e| e.to_string())
            } else {
                serde_yaml_ng::to_string(&document).map_err(|e| e.to_string())
            };
            let text = text.map_err(|message| CtlError::Encode {
                what: R::PLURAL.into(),
                message,
            })?;
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

fn encode<R: Resource>(object: &R) -> Result<Value, CtlError> {
    to_value(object).map_err(|e| CtlError::Encode {
        what: format!("{} {}", R::KIND, object.meta().name),
        message: e.to_string(),
    })
}

/// `ctl describe KIND NAME`: the object's metadata, its spec and status as YAML, and the
/// events about it.
pub async fn describe<C: Client>(
    client: &C,
    kind: Kind,
    name: &str,
    scope: &Scope,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    with_kind!(kind, R => describe_kind::<C, R>(client, name, scope, now, out).await)
}

async fn describe_kind<C: Client, R: Resource>(
    client: &C,
    name: &str,
    scope: &Scope,
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let object: R = client
        .get(scope.namespace(), name)
        .await
        .map_err(|e| CtlError::api(format!("getting {} {name:?}", R::KIND), e))?;
    let meta = object.meta();
    writeln!(out, "Name:         {}", meta.name)?;
    if R::NAMESPACED {
        writeln!(out, "Namespace:    {}", meta.namespace)?;
    }
    writeln!(out, "Labels:       {}", pairs(&meta.labels))?;
    writeln!(out, "Annotations:  {}", pairs(&meta.annotations))?;
    let created = meta
        .creation_timestamp
        .map_or("<unknown>".to_string(), |t| {
            format!("{} ({} ago)", t, age(meta, now))
        });
    writeln!(out, "Created:      {created}")?;
    if let Value::Object(mut map) = encode(&object)? {
        for field in ["apiVersion", "kind", "metadata"] {
            map.remove(field);
        }
        for (field, value) in map {
            let yaml = serde_yaml_ng::to_string(&value).map_err(|e| CtlError::Encode {
                what: format!("{} {name}", R::KIND),
                message: e.to_string(),
            })?;
            writeln!(out, "{}:", capitalize(&field))?;
            for line in yaml.lines() {
                writeln!(out, "  {line}")?;
            }
        }
    }
    let events = events_about::<C, R>(client, &object).await?;
    out.write_all(events_table(&events, now).as_bytes())?;
    Ok(())
}

/// The events about `object`, oldest first: those naming its name (selected by the server) and
/// kind, and its uid when they carry one (events about an earlier object of the same name
/// are not its own).
async fn events_about<C: Client, R: Resource>(
    client: &C,
    object: &R,
) -> Result<Vec<Event>, CtlError> {
    let meta = object.meta();
    // Events about cluster-scoped objects (nodes) live in `default`, as in Kubernetes.
    let namespace = if R::NAMESPACED {
        meta.namespace.as_str()
    } else {
        "default"
    };
    let selector = FieldSelector::equals("involvedObject.name", meta.name.clone());
    let options = ListOptions {
        field_selector: selector,
        ..ListOptions::default()
    };
    let mut events: Vec<Event> = client
        .list::<Event>(Some(namespace), &options)
        .await
        .map_err(|e| CtlError::api("listing events", e))?
        .items
        .into_iter()
        .filter(|e| e.involved_object.kind == R::KIND)
        .filter(|e| e.involved_object.uid.is_empty() || e.involved_object.uid == meta.uid)
        .collect();
    events.sort_by_key(|e| (last_seen(e), e.metadata.creation_timestamp));
    Ok(events)
}

fn last_seen(event: &Event) -> Option<Time> {
    event
        .last_timestamp
        .or(event.first_timestamp)
        .or(event.metadata.creation_timestamp)
}

/// kubectl's events section of `describe`: Type, Reason, Age (`10s (x5 over 2m)` for a
/// repeated event), From (the reporting component) and Message, aligned.
fn events_table(events: &[Event], now: Timestamp) -> String {
    if events.is_empty() {
        return "Events:       <none>\n".into();
    }
    let ago = |t: Option<Time>| {
        t.map_or("<unknown>".to_string(), |t| {
            human_duration(now.as_second() - t.as_second())
        })
    };
    let mut rows = vec![
        ["Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec(),
        ["----", "------", "----", "----", "-------"]
            .map(String::from)
            .to_vec(),
    ];
    for event in events {
        let count = event.count.unwrap_or(1);
        let age = if count > 1 {
            let first = event.first_timestamp.or(event.metadata.creation_timestamp);
            format!("{} (x{count} over {})", ago(last_seen(event)), ago(first))
        } else {
            ago(last_seen(event))
        };
        let from = event
            .source
            .as_ref()
            .map(|s| s.component.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| event.reporting_component.clone());
        rows.push(vec![
            event.type_.clone(),
            event.reason.clone(),
            age,
            from,
            event.message.trim().to_owned(),
        ]);
    }
    let mut out = String::from("Events:\n");
    for line in align(&rows).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn pairs(map: &std::collections::BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "<none>".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n              ")
}

fn capitalize(field: &str) -> String {
    let mut chars = field.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `ctl delete KIND NAME`.
pub async fn delete<C: Client>(
    client: &C,
    kind: Kind,
    name: &str,
    scope: &Scope,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let pending = with_kind!(kind, R => {
        let outcome = client
            .delete::<R>(scope.namespace(), name, &DeleteOptions::default())
            .await
            .map_err(|e| CtlError::api(format!("deleting {} {name:?}", R::KIND), e))?;
        match outcome {
            DeleteOutcome::Deleted(_) => None,
            DeleteOutcome::Pending(object) => Some(object.meta().finalizers.join(", ")),
        }
    });
    match pending {
        None => writeln!(out, "{kind} {name:?} deleted")?,
        Some(finalizers) => writeln!(
            out,
            "{kind} {name:?} marked for deletion; it stays until its finalizers are done: {finalizers}"
        )?,
    }
    Ok(())
}
