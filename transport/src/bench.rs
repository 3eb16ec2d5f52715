//! A reference measurement: raw QUIC throughput on loopback with the
//! cluster's TLS and transport configuration, no framing, no disk.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;

use crate::codes;
use crate::endpoint::{accept, bind, connect};
use crate::error::{Result, TransportError};
use crate::pki::{self, Component};
use crate::role::Role;

/// Size of each chunk the sender hands to quinn.
const CHUNK: usize = 1 << 20;

/// Send `bytes` bytes over one raw QUIC stream between two endpoints on
/// 127.0.0.1 (mutual TLS with throwaway in-memory certificates, this
/// crate's transport configuration) and return the throughput in MB/s
/// (10^6 bytes per second).
///
/// The clock runs from opening the stream until the receiver confirms it
/// has read every byte, so it includes one round trip. Must be called
/// inside a multi-threaded tokio runtime for a meaningful number.
pub async fn raw_loopback_throughput(bytes: u64) -> Result<f64> {
    let identities = pki::ephemeral(&[
        Component::new("bench-receiver", Role::Mover, ["localhost", "127.0.0.1"]),
        Component::new("bench-sender", Role::PrimaryNode, ["localhost", "127.0.0.1"]),
    ])?;
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let receiver = bind(local, &identities[0])?;
    let sender = bind(local, &identities[1])?;
    let receiver_addr = receiver.local_addr()?;

    let receiving = tokio::spawn(async move {
        let incoming = receiver.accept().await.ok_or_else(|| TransportError::Closed {
            reason: "receiver endpoint closed".into(),
        })?;
        let (conn, _) = accept(incoming).await?;
        let (mut send, mut recv) = conn.accept_bi().await?;
        let mut total: u64 = 0;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
            total += chunk.bytes.len() as u64;
        }
        send.write_all(&total.to_be_bytes()).await?;
        send.finish()?;
        // Keep the connection until the sender closes it, so the count
        // is delivered.
        conn.closed().await;
        receiver.wait_idle().await;
        Ok::<u64, TransportError>(total)
    });

    let (conn, _) = connect(&sender, receiver_addr, "bench-receiver", Role::Mover).await?;
    let start = Instant::now();
    let (mut send, mut recv) = conn.open_bi().await?;
    let block = Bytes::from(vec![0xA5u8; CHUNK]);
    let mut left = bytes;
    while left > 0 {
        let n = proto::num::at_most(left, CHUNK);
        send.write_chunk(block.slice(..n)).await?;
        left -= n as u64;
    }
    send.finish()?;
    let ack = recv.read_to_end(8).await?;
    let elapsed = start.elapsed();
    conn.close(codes::DONE, b"done");
    sender.wait_idle().await;

    let received = receiving.await.map_err(|e| TransportError::Closed {
        reason: format!("receiver task failed: {e}"),
    })??;
    let confirmed = <[u8; 8]>::try_from(ack.as_slice()).map(u64::from_be_bytes).ok();
    if confirmed != Some(bytes) || received != bytes {
        return Err(TransportError::Closed {
            reason: format!("sent {bytes} bytes, receiver counted {received} and confirmed {confirmed:?}"),
        });
    }
    Ok(bytes as f64 / 1e6 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE))
}
