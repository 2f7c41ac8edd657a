//! The client conformance suite (`orchestra_api::testing`) run against `LocalClient`, over
//! `MemStore` and over `DiskStore` in a temporary directory.

use orchestra_api::LocalClient;
use orchestra_api::testing;
use orchestra_store::{DiskStore, MemStore};

async fn disk() -> (LocalClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DiskStore::open(dir.path()).await.expect("open DiskStore");
    (LocalClient::new(store), dir)
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                #[tokio::test]
                async fn mem_store() {
                    let client = orchestra_api::LocalClient::new(orchestra_store::MemStore::new());
                    orchestra_api::testing::$check(&client).await;
                }

                #[tokio::test]
                async fn disk_store() {
                    let (client, _dir) = super::disk().await;
                    orchestra_api::testing::$check(&client).await;
                }
            }
        )*
    };
}

conformance!(
    create_get_and_already_exists,
    update_preconditions_and_generation,
    status_subresource,
    merge_patch,
    list_selectors_and_pages,
    delete_with_finalizers,
    bind_once,
    watch_events,
    bad_input,
);

#[tokio::test]
async fn the_whole_suite_shares_one_client() {
    testing::run_all(&LocalClient::new(MemStore::new())).await;
    let (client, _dir) = disk().await;
    testing::run_all(&client).await;
}
