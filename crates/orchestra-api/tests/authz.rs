//! Authorization as the server runs it: `AuthorizerChain::standard(node, rbac)` fed from a
//! LocalClient, with the built-in roles bootstrapped, and every decision audited.

use std::time::{Duration, SystemTime};

use orchestra_api::auth::audit::MemoryAuditSink;
use orchestra_api::auth::bootstrap::{SCHEDULER_USER, ensure_default_roles};
use orchestra_api::auth::node::NodeAuthorizer;
use orchestra_api::auth::rbac::RbacAuthorizer;
use orchestra_api::auth::{
    AuditEntry, AuditSink, Authorizer, AuthorizerChain, Decision, GROUP_AUTHENTICATED, GROUP_NODES,
    RequestAttributes, UserInfo, Verb,
};
use orchestra_api::meta::ObjectMeta;
use orchestra_api::resources::{RoleBinding, RoleRef, Subject};
use orchestra_api::{Client, LocalClient, testing};
use orchestra_store::MemStore;

const VERBS: [Verb; 7] = [
    Verb::Get,
    Verb::List,
    Verb::Watch,
    Verb::Create,
    Verb::Update,
    Verb::Patch,
    Verb::Delete,
];

fn req(user: &UserInfo, verb: Verb, resource: &str, name: Option<&str>) -> RequestAttributes {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
        None => (resource.to_owned(), None),
    };
    RequestAttributes {
        user: user.clone(),
        verb,
        api_group: String::new(),
        resource,
        subresource,
        namespace: Some("shop".into()),
        name: name.map(str::to_owned),
    }
}

/// What the server does per request: decide, then audit writes and denials.
fn serve(chain: &AuthorizerChain, audit: &MemoryAuditSink, request: RequestAttributes) -> Decision {
    let decision = chain.authorize(&request);
    let allowed = decision == Decision::Allow;
    if request.verb.is_write() || !allowed {
        audit.record(AuditEntry {
            time: SystemTime::now(),
            reason: match &decision {
                Decision::Deny(why) => why.clone(),
                _ => String::new(),
            },
            request,
            allowed,
        });
    }
    decision
}

async fn until(
    mut check: impl FnMut() -> bool,
    changes: &mut tokio::sync::watch::Receiver<orchestra_api::auth::rbac::FeedState>,
) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !check() {
            changes.changed().await.expect("feed alive");
        }
    })
    .await
    .expect("the authorizer saw the change");
}

#[tokio::test(start_paused = true)]
async fn users_get_only_what_their_bindings_and_nodes_only_their_own() {
    let client = LocalClient::new(MemStore::new());
    ensure_default_roles(&client).await.expect("bootstrap");
    let (node, rbac) = (NodeAuthorizer::new(), RbacAuthorizer::new());
    let chain = AuthorizerChain::standard(node.clone(), rbac.clone());
    let feeds = [
        tokio::spawn({
            let (rbac, client) = (rbac.clone(), client.clone());
            async move { rbac.run(client).await }
        }),
        tokio::spawn({
            let (node, client) = (node.clone(), client.clone());
            async move { node.run(client).await }
        }),
    ];
    rbac.wait_until_ready().await;
    let audit = MemoryAuditSink::new();

    // A user without a role is refused every verb, with the user, verb and resource named.
    let erin = UserInfo::new("erin", [GROUP_AUTHENTICATED]);
    for verb in VERBS {
        let decision = serve(&chain, &audit, req(&erin, verb, "pods", Some("web")));
        assert_eq!(
            decision,
            Decision::Deny(format!(
                "user \"erin\" cannot {verb} resource \"pods\" named \"web\" in the namespace \"shop\""
            ))
        );
    }
    // Bound to `edit` in shop, she may; the binding's removal takes it back.
    let mut changes = rbac.subscribe();
    client
        .create(&RoleBinding {
            metadata: ObjectMeta::namespaced("shop", "erin-edit"),
            subjects: vec![Subject::user("erin")],
            role_ref: RoleRef::cluster_role("edit"),
        })
        .await
        .expect("binding");
    until(
        || rbac.authorize(&req(&erin, Verb::Delete, "pods", Some("web"))) == Decision::Allow,
        &mut changes,
    )
    .await;
    for verb in VERBS {
        assert_eq!(
            serve(&chain, &audit, req(&erin, verb, "pods", Some("web"))),
            Decision::Allow,
            "{verb}"
        );
    }
    assert_ne!(
        serve(
            &chain,
            &audit,
            req(&erin, Verb::Create, "pods/binding", Some("web"))
        ),
        Decision::Allow
    );

    // The scheduler binds; a node cannot, nor touch another node's pod, though the
    // `system:node` role bound to `system:nodes` would allow pod updates.
    let scheduler = UserInfo::new(SCHEDULER_USER, [GROUP_AUTHENTICATED]);
    assert_eq!(
        serve(
            &chain,
            &audit,
            req(&scheduler, Verb::Create, "pods/binding", Some("web"))
        ),
        Decision::Allow
    );
    let mut pod = testing::pod("shop", "web", "web");
    pod.spec.node_name = "b".into();
    client.create(&pod).await.expect("pod on b");
    let mut node_changes = node.subscribe();
    let node_b = UserInfo::new("system:node:b", [GROUP_NODES, GROUP_AUTHENTICATED]);
    tokio::time::timeout(Duration::from_secs(60), async {
        while node.authorize(&req(&node_b, Verb::Update, "pods/status", Some("web")))
            != Decision::Allow
        {
            node_changes.changed().await.expect("feed alive");
        }
    })
    .await
    .expect("the node graph saw the pod");
    let node_a = UserInfo::new("system:node:a", [GROUP_NODES, GROUP_AUTHENTICATED]);
    for (verb, resource) in [
        (Verb::Update, "pods/status"),
        (Verb::Update, "pods"),
        (Verb::Delete, "pods"),
    ] {
        assert!(matches!(
            serve(&chain, &audit, req(&node_a, verb, resource, Some("web"))),
            Decision::Deny(_)
        ));
    }

    // Every denial and every write was audited (the waits above asked the authorizers
    // directly, outside the chain). Denials are counted by the server (secure_server.rs).
    let entries = audit.entries();
    let denied = entries.iter().filter(|e| !e.allowed).count();
    assert_eq!(denied, 7 + 1 + 3);
    assert!(
        entries
            .iter()
            .all(|e| e.allowed || e.reason.contains("cannot"))
    );
    for feed in feeds {
        feed.abort();
    }
}
