//! Print the reference raw QUIC throughput on loopback.
//!
//! `cargo run --release -p transport --example loopback_throughput [MiB]`
//! (default 1024 MiB).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mib: u64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| anyhow::anyhow!("expected a size in MiB, found {arg:?}: {e}"))?,
        None => 1024,
    };
    let mbps = transport::raw_loopback_throughput(mib << 20).await?;
    println!("raw QUIC loopback (mTLS, one stream, {mib} MiB): {mbps:.0} MB/s");
    Ok(())
}
