//! `ctl` end to end over a `LocalClient`: the command lines a user types, parsed by clap, and
//! the exact text they print.

use clap::Parser;
use orchestra::api::LocalClient;
use orchestra::store::MemStore;

use super::*;
use crate::cli::{Cli, Command};

const MANIFEST: &str = r#"
# A service and its deployment, as people write them.
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  labels: {app: debug}
spec:
  containers:
    - name: sh
      image: busybox
"#;

/// Run `orchestra ctl ...` and return (stdout, stderr) or the error.
async fn ctl(client: &LocalClient, line: &str) -> Result<(String, String), CtlError> {
    let argv = std::iter::once("orchestra").chain(line.split_whitespace());
    let cli = Cli::try_parse_from(argv).expect("the command line parses");
    let Command::Ctl(args) = cli.command else {
        panic!("not a ctl command: {line}");
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run(client, &args, &mut out, &mut err).await?;
    Ok((
        String::from_utf8(out).expect("utf-8"),
        String::from_utf8(err).expect("utf-8"),
    ))
}

fn manifest_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    std::fs::write(file.path(), text).expect("write the manifest");
    file
}

#[tokio::test]
async fn apply_creates_then_leaves_unchanged_then_configures() {
    let client = LocalClient::new(MemStore::new());
    let file = manifest_file(MANIFEST);
    let apply = format!("ctl apply -f {}", file.path().display());
    let (out, err) = ctl(&client, &apply).await.unwrap();
    assert_eq!(
        out,
        "service/web created\ndeployment/web created\npod/debug created\n"
    );
    assert_eq!(err, "");

    let (out, _) = ctl(&client, &apply).await.unwrap();
    assert_eq!(
        out,
        "service/web unchanged\ndeployment/web unchanged\npod/debug unchanged\n"
    );

    std::fs::write(file.path(), MANIFEST.replace("replicas: 3", "replicas: 5")).unwrap();
    let (out, _) = ctl(&client, &apply).await.unwrap();
    assert_eq!(
        out,
        "service/web unchanged\ndeployment/web configured\npod/debug unchanged\n"
    );
    let (out, _) = ctl(&client, "ctl get deploy web -o json").await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["spec"]["replicas"], 5);
    assert_eq!(value["kind"], "Deployment");
}

#[tokio::test]
async fn get_prints_kubectl_tables_lists_and_selections() {
    let client = LocalClient::new(MemStore::new());
    let file = manifest_file(MANIFEST);
    ctl(&client, &format!("ctl apply -f {}", file.path().display()))
        .await
        .unwrap();

    let (out, _) = ctl(&client, "ctl get pods").await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("NAME    READY   STATUS    RESTARTS   AGE   NODE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("debug   0/1     Pending   0          "),
        "{out}"
    );

    let (out, _) = ctl(&client, "ctl get svc -o wide").await.unwrap();
    assert!(out.contains("80/TCP"), "{out}");
    assert!(out.contains("app=web"), "{out}");

    let (out, _) = ctl(&client, "ctl get deployments -o yaml").await.unwrap();
    let list: serde_json::Value = serde_yaml_ng::from_str(&out).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    let (out, err) = ctl(&client, "ctl get pods -l app=web").await.unwrap();
    assert_eq!(out, "");
    assert_eq!(err, "No resources found in default namespace.\n");

    let (out, _) = ctl(&client, "ctl get po -A").await.unwrap();
    assert!(out.starts_with("NAMESPACE   NAME"), "{out}");
}

#[tokio::test]
async fn describe_shows_metadata_spec_and_events() {
    use orchestra::api::meta::Time;
    use orchestra::api::resources::{Event, EventSource, ObjectReference, Pod};
    use orchestra::api::{Client, ObjectMeta};

    let client = LocalClient::new(MemStore::new());
    let file = manifest_file(MANIFEST);
    ctl(&client, &format!("ctl apply -f {}", file.path().display()))
        .await
        .unwrap();
    let pod: Pod = client.get("default", "debug").await.unwrap();
    let ago = |minutes: i64| {
        Some(Time::new(
            jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes),
        ))
    };
    let event = |name: &str, kind: &str, uid: &str, reason: &str, message: &str| Event {
        metadata: ObjectMeta::namespaced("default", name),
        involved_object: ObjectReference {
            kind: kind.into(),
            name: "debug".into(),
            namespace: "default".into(),
            uid: uid.into(),
            ..Default::default()
        },
        reason: reason.into(),
        message: message.into(),
        source: Some(EventSource {
            component: "default-scheduler".into(),
            host: String::new(),
        }),
        type_: "Normal".into(),
        ..Default::default()
    };
    // Recorded first, seen last: three times over 30 minutes, the last 10 minutes ago.
    let mut failed = event(
        "debug.1",
        "Pod",
        &pod.metadata.uid,
        "FailedScheduling",
        "0/0 nodes are available",
    );
    failed.type_ = "Warning".into();
    (failed.first_timestamp, failed.last_timestamp, failed.count) = (ago(30), ago(10), Some(3));
    client.create(&failed).await.unwrap();
    let mut scheduled = event(
        "debug.2",
        "Pod",
        &pod.metadata.uid,
        "Scheduled",
        "Successfully assigned default/debug to n1",
    );
    (scheduled.first_timestamp, scheduled.last_timestamp) = (ago(20), ago(20));
    client.create(&scheduled).await.unwrap();
    // Not about this pod: an earlier pod of the same name, and a service named debug.
    client
        .create(&event("debug.3", "Pod", "old-uid", "Killing", "gone"))
        .await
        .unwrap();
    client
        .create(&event("debug.4", "Service", "", "Created", "other kind"))
        .await
        .unwrap();

    let (out, _) = ctl(&client, "ctl describe pod debug").await.unwrap();
    assert!(
        out.starts_with("Name:         debug\nNamespace:    default\n"),
        "{out}"
    );
    assert!(out.contains("Labels:       app=debug"), "{out}");
    assert!(out.contains("Spec:\n  containers:"), "{out}");
    let events = &out[out.find("Events:").expect("an events section")..];
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(lines.len(), 5, "{events}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(header, ["Type", "Reason", "Age", "From", "Message"]);
    assert!(lines[3].starts_with("  Normal    Scheduled   "), "{events}");
    assert!(lines[3].ends_with("Successfully assigned default/debug to n1"));
    assert_eq!(
        lines[4],
        "  Warning   FailedScheduling   10m (x3 over 30m)   default-scheduler   0/0 nodes are available"
    );

    let (out, _) = ctl(&client, "ctl describe service web").await.unwrap();
    assert!(out.ends_with("Events:       <none>\n"), "{out}");
}

#[tokio::test]
async fn delete_removes_and_errors_name_what_was_wrong() {
    let client = LocalClient::new(MemStore::new());
    let file = manifest_file(MANIFEST);
    ctl(&client, &format!("ctl apply -f {}", file.path().display()))
        .await
        .unwrap();
    let (out, _) = ctl(&client, "ctl delete pod debug").await.unwrap();
    assert_eq!(out, "pod \"debug\" deleted\n");

    let err = ctl(&client, "ctl get pod debug").await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    let err = ctl(&client, "ctl get pdos").await.unwrap_err();
    assert!(err.to_string().contains("resource type \"pdos\""), "{err}");
    let err = ctl(&client, "ctl get pods -l app=(").await.unwrap_err();
    assert!(err.to_string().contains("invalid label selector"), "{err}");
}

#[tokio::test]
async fn a_bad_manifest_names_the_file_and_document_and_writes_nothing() {
    let client = LocalClient::new(MemStore::new());
    let good = manifest_file(MANIFEST);
    let bad =
        manifest_file("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: 3\n");
    let line = format!(
        "ctl apply -f {} -f {}",
        good.path().display(),
        bad.path().display()
    );
    let err = ctl(&client, &line).await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&bad.path().display().to_string()),
        "{message}"
    );
    assert!(message.contains("spec.containers"), "{message}");
    let (_, notice) = ctl(&client, "ctl get pods").await.unwrap();
    assert_eq!(
        notice, "No resources found in default namespace.\n",
        "nothing was applied"
    );

    let unknown = manifest_file(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec:\n  containers: [{name: c, image: i}]\n  bogus: 1\n",
    );
    let (out, warning) = ctl(
        &client,
        &format!("ctl apply -f {}", unknown.path().display()),
    )
    .await
    .unwrap();
    assert_eq!(out, "pod/y created\n");
    assert!(warning.contains("spec.bogus: unknown field"), "{warning}");
    let strict = ctl(
        &client,
        &format!("ctl apply --strict -f {}", unknown.path().display()),
    )
    .await
    .unwrap_err();
    assert!(strict.to_string().contains("spec.bogus"), "{strict}");
}

const WORKLOADS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {LOG_LEVEL: info}
binaryData: {logo.png: iVBORw0KGgo=}
---
apiVersion: v1
kind: Secret
metadata: {name: db}
stringData: {password: s3cret}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  completions: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "shop/migrate:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {role: edge}
      containers: [{name: agent, image: "agent:1"}]
"#;

#[tokio::test]
async fn config_maps_secrets_jobs_and_daemon_sets_apply_and_print() {
    let client = LocalClient::new(MemStore::new());
    let file = manifest_file(WORKLOADS);
    let apply = format!("ctl apply -f {}", file.path().display());
    let (out, _) = ctl(&client, &apply).await.unwrap();
    assert_eq!(
        out,
        "configmap/settings created\nsecret/db created\njob/migrate created\ndaemonset/agent created\n"
    );
    // Applied again: the server's additions (the Job's selector, the Secret's merged data)
    // do not count as changes.
    let (out, _) = ctl(&client, &apply).await.unwrap();
    assert_eq!(
        out,
        "configmap/settings unchanged\nsecret/db unchanged\njob/migrate unchanged\ndaemonset/agent unchanged\n"
    );
    let (out, _) = ctl(&client, "ctl get cm").await.unwrap();
    assert!(
        out.starts_with("NAME       DATA   AGE\nsettings   2      "),
        "{out}"
    );
    let (out, _) = ctl(&client, "ctl get secrets").await.unwrap();
    assert!(
        out.starts_with("NAME   TYPE     DATA   AGE\ndb     Opaque   1      "),
        "{out}"
    );
    let (out, _) = ctl(&client, "ctl get jobs").await.unwrap();
    assert!(
        out.starts_with("NAME      COMPLETIONS   DURATION   AGE\nmigrate   0/3"),
        "{out}"
    );
    let (out, _) = ctl(&client, "ctl get ds").await.unwrap();
    assert!(
        out.starts_with("NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE\nagent   0         0         0       0            0           role=edge       "),
        "{out}"
    );
}

#[tokio::test]
async fn apply_and_get_rbac_objects() {
    let client = LocalClient::new(MemStore::new());
    let file = manifest_file(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: shop}
rules:
- apiGroups: [""]
  resources: [pods, pods/status]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: shop}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
"#,
    );
    let apply = format!("ctl apply -f {}", file.path().display());
    let (out, err) = ctl(&client, &apply).await.unwrap();
    assert_eq!(
        out,
        "role/pod-reader created\nrolebinding/read-pods created\n"
    );
    assert_eq!(err, "");
    let (out, _) = ctl(&client, &apply).await.unwrap();
    assert_eq!(
        out,
        "role/pod-reader unchanged\nrolebinding/read-pods unchanged\n"
    );
    let (out, _) = ctl(&client, "ctl get rolebindings -n shop").await.unwrap();
    assert!(
        out.starts_with("NAME        ROLE              AGE\nread-pods   Role/pod-reader   "),
        "{out}"
    );
}

const STATEFUL_SET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
"#;

#[tokio::test]
async fn stateful_sets_get_scale_and_roll_back() {
    use orchestra::api::Client;
    use orchestra::api::resources::StatefulSet;
    use orchestra::controller::controllers::history::plan_history;

    let client = LocalClient::new(MemStore::new());
    let file = manifest_file(STATEFUL_SET);
    let (out, _) = ctl(&client, &format!("ctl apply -f {}", file.path().display()))
        .await
        .unwrap();
    assert_eq!(out, "statefulset/db created\n");
    let (out, _) = ctl(&client, "ctl get sts").await.unwrap();
    assert!(
        out.starts_with("NAME   READY   AGE\ndb     0/3     "),
        "{out}"
    );
    let (out, _) = ctl(&client, "ctl scale statefulset/db --replicas 5")
        .await
        .unwrap();
    assert_eq!(out, "statefulset/db scaled\n");
    let (out, _) = ctl(&client, "ctl rollout status sts/db --watch=false")
        .await
        .unwrap();
    assert_eq!(
        out,
        "Waiting for statefulset spec update to be observed...\n"
    );

    // Two revisions, as the controller records them; the set runs the second.
    let mut sts: StatefulSet = client.get("default", "db").await.unwrap();
    assert_eq!(sts.spec.replicas, Some(5));
    let first = plan_history(&sts, &[], &[]).create.unwrap();
    client.create(&first).await.unwrap();
    sts.spec.template.spec.containers[0].image = "db:2".into();
    let mut second = plan_history(&sts, &[], &[]).create.unwrap();
    second.revision = 2;
    client.create(&second).await.unwrap();
    client.update(&sts).await.unwrap();
    let (out, _) = ctl(&client, "ctl rollout history statefulset/db")
        .await
        .unwrap();
    assert_eq!(
        out,
        "statefulset.apps/db\nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"
    );
    let (out, _) = ctl(&client, "ctl rollout undo statefulset/db")
        .await
        .unwrap();
    assert_eq!(out, "statefulset.apps/db rolled back\n");
    let sts: StatefulSet = client.get("default", "db").await.unwrap();
    assert_eq!(sts.spec.template.spec.containers[0].image, "db:1");
    let err = ctl(&client, "ctl rollout status daemonset/db --watch=false")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("rollout status works on deployments and statefulsets"),
        "{err}"
    );
}

#[tokio::test]
async fn traffic_splits_apply_get_and_refuse_bad_weights() {
    let client = LocalClient::new(MemStore::new());
    let manifest = r#"
apiVersion: mesh.orchestra.dev/v1alpha1
kind: TrafficSplit
metadata: {name: web-canary, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 90}
  - {service: web-v2, weight: 10}
"#;
    let file = manifest_file(manifest);
    let apply = format!("ctl apply -f {}", file.path().display());
    let (out, err) = ctl(&client, &apply).await.unwrap();
    assert_eq!(out, "trafficsplit/web-canary created\n");
    assert_eq!(err, "");
    // The canary takes everything: only the weights change.
    std::fs::write(
        file.path(),
        manifest
            .replace("weight: 90", "weight: 0")
            .replace("weight: 10", "weight: 100"),
    )
    .unwrap();
    let (out, _) = ctl(&client, &apply).await.unwrap();
    assert_eq!(out, "trafficsplit/web-canary configured\n");
    for kind in ["ts", "trafficsplits", "trafficsplit"] {
        let (out, _) = ctl(&client, &format!("ctl get {kind} -n shop"))
            .await
            .unwrap();
        assert!(
            out.starts_with(
                "NAME         SERVICE   BACKENDS              AGE\nweb-canary   web       web-v1:0,web-v2:100   "
            ),
            "{kind}: {out}"
        );
    }

    // A negative weight is refused by the server, naming the field.
    let bad = manifest_file(&manifest.replace("weight: 10", "weight: -10"));
    let error = ctl(&client, &format!("ctl apply -f {}", bad.path().display()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("spec.backends[1].weight: Invalid value: -10"),
        "{error}"
    );
}
