//! The NBD export: each volume of the node is an NBD export named after it,
//! served on a loopback TCP address, so real clients (`qemu-io`,
//! `qemu-img`, `qemu-nbd`, `nbd-client`) read and write the volumes. Every
//! write goes through [`HostIo`], which tracks changes. A target volume
//! (it holds a copy version) is exported read-only, for inspection. The
//! protocol is the sans-IO codec in `proto::nbd`; this module only moves
//! bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use proto::nbd::{
    encode_reply, encode_reply_header, Command, Errno, ExportInfo, Incoming, RequestDecoder, ServerHandshake, Status,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::host::{HostIo, HostVolume};

/// Bind the export. NBD has no authentication: only loopback addresses.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    if !addr.ip().is_loopback() {
        bail!("--nbd {addr}: NBD has no authentication; bind it to a loopback address (127.0.0.1 or ::1)");
    }
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the NBD export on {addr}"))
}

/// Serve NBD clients until the listener fails.
pub async fn serve(listener: TcpListener, host: Arc<HostIo>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "NBD accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let host = host.clone();
        tokio::spawn(async move {
            match client(stream, &host).await {
                Ok(()) => tracing::debug!(%peer, "NBD client left"),
                Err(e) => tracing::warn!(%peer, error = %format!("{e:#}"), "NBD client dropped"),
            }
        });
    }
}

async fn read_more(stream: &mut TcpStream, input: &mut Vec<u8>) -> Result<bool> {
    let mut buf = [0u8; 64 * 1024];
    let n = stream.read(&mut buf).await.context("reading from the NBD client")?;
    input.extend_from_slice(&buf[..n]);
    Ok(n > 0)
}

async fn client(mut stream: TcpStream, host: &HostIo) -> Result<()> {
    stream.set_nodelay(true).ok();
    let exports: Vec<ExportInfo> = host
        .exports()
        .into_iter()
        .map(|(name, size, read_only)| ExportInfo { name, size, read_only })
        .collect();
    let mut hs = ServerHandshake::new(exports);
    stream.write_all(&ServerHandshake::greeting()).await?;
    let mut input = Vec::new();
    let mut output = Vec::new();
    let negotiated = loop {
        if !read_more(&mut stream, &mut input).await? {
            return Ok(());
        }
        let status = hs.feed(&mut input, &mut output);
        stream.write_all(&output).await?;
        output.clear();
        match status.context("NBD handshake")? {
            Status::NeedMore => {}
            Status::Aborted => return Ok(()),
            Status::Done(n) => break n,
        }
    };
    let vol = host.volume(&negotiated.export.name)?;
    tracing::info!(export = %negotiated.export.name, "NBD client attached");
    let mut decoder = RequestDecoder::for_export(&negotiated);
    loop {
        while let Some(incoming) = decoder.decode(&mut input).context("NBD request")? {
            match incoming {
                Incoming::Rejected(r) => {
                    tracing::debug!(reason = %r.reason, "NBD request refused");
                    stream.write_all(&r.reply()).await?;
                }
                Incoming::Request(req) => {
                    if matches!(req.command, Command::Disconnect) {
                        return Ok(());
                    }
                    answer(&mut stream, vol, req.cookie, req.fua, req.command).await?;
                }
            }
        }
        if !read_more(&mut stream, &mut input).await? {
            return Ok(());
        }
    }
}

/// Carry out one request and reply.
async fn answer(stream: &mut TcpStream, vol: &HostVolume, cookie: u64, fua: bool, cmd: Command) -> Result<()> {
    let name = cmd.name();
    let started = std::time::Instant::now();
    let is_write = matches!(cmd, Command::Write { .. } | Command::WriteZeroes { .. });
    let outcome = tokio::task::block_in_place(|| -> Result<Option<Vec<u8>>> {
        match cmd {
            Command::Read { offset, length } => Ok(Some(vol.read(offset, length as usize)?)),
            Command::Write { offset, data } => {
                vol.write(offset, &data)?;
                if fua {
                    vol.flush()?;
                }
                Ok(None)
            }
            Command::WriteZeroes { offset, length, .. } => {
                vol.write_zeroes(offset, u64::from(length))?;
                if fua {
                    vol.flush()?;
                }
                Ok(None)
            }
            Command::Flush => vol.flush().map(|_| None),
            // A hint: the data stays (and so needs no change marks).
            Command::Trim { .. } => Ok(None),
            Command::Disconnect => Ok(None),
        }
    });
    if is_write {
        // Host write latency as the node sees it: copy-on-write of a
        // protected track included (the price of a running backup).
        metrics::histogram!("dmc_primary_nbd_write_seconds").record(started.elapsed().as_secs_f64());
    }
    match outcome {
        Ok(Some(data)) => {
            stream.write_all(&encode_reply_header(cookie, None)).await?;
            stream.write_all(&data).await?;
        }
        Ok(None) => stream.write_all(&encode_reply(cookie, Ok(&[]))).await?,
        Err(e) => {
            tracing::error!(command = name, volume = %vol.volume.name, error = %format!("{e:#}"), "NBD request failed");
            stream.write_all(&encode_reply(cookie, Err(Errno::Io))).await?;
        }
    }
    Ok(())
}
