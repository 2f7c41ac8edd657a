//! A tight loop of unconditional puts on a [`MemStore`], for profilers: run it under callgrind
//! with two counts and divide the difference in instructions by the difference in puts to get
//! the instructions of one put, free of the setup. It mirrors `orchestra bench store --backend
//! memory --op put --clients 1` (10,000 keys picked at random, 256-byte values, mimalloc) minus
//! the benchmark's clock reads and histogram.
//!
//! ```text
//! cargo build --release -p orchestra-store --example put_loop
//! valgrind --tool=callgrind target/release/examples/put_loop 200000 [--retain 100000]
//! ```

use std::time::Instant;

use bytes::Bytes;
use orchestra_store::{EngineOptions, MemStore, Store, StoreExt};

/// The allocator of the `orchestra` binary, so that the loop allocates as the benchmark does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: u64 = 10_000;
const VALUE_SIZE: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let puts: u64 = args.next().as_deref().unwrap_or("1000000").parse()?;
    let mut options = EngineOptions::default();
    if args.next().as_deref() == Some("--retain") {
        options.auto_compaction_retention = Some(args.next().as_deref().unwrap_or("0").parse()?);
    }
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemStore::with_options(options));
    let keys: Vec<Bytes> = (0..KEYS)
        .map(|i| Bytes::from(format!("/bench/load/{i:08}")))
        .collect();
    let value = Bytes::from(vec![7u8; VALUE_SIZE]);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let started = Instant::now();
    runtime.block_on(async {
        // xorshift64: a fixed, dependency-free sequence of key indexes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..puts {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = keys[(x % KEYS) as usize].clone();
            store.put(key, value.clone()).await?;
        }
        Ok::<(), orchestra_store::StoreError>(())
    })?;
    let elapsed = started.elapsed();
    println!(
        "{puts} puts in {:.3} s: {:.0} puts/s",
        elapsed.as_secs_f64(),
        puts as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
