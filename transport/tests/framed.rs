//! Typed framed streams over real QUIC connections: round trips, and what
//! happens to malformed, oversized and truncated frames.
#![allow(clippy::cast_possible_truncation)] // test data: byte patterns wrap on purpose, sizes are small constants

mod common;

use common::{cluster, load, local, within};
use proto::wire::{WireError, MAX_CONTROL_FRAME, MAX_DATA_FRAME};
use rkyv::{Archive, Deserialize, Serialize};
use transport::{accept, accept_bi, bind, codes, connect, open_bi, FramedRecv, FramedSend, Role, TransportError};

#[derive(Archive, Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Track {
    seq: u64,
    volume: String,
    data: Vec<u8>,
}

/// A connected pair: (client connection, server connection).
async fn pair() -> (
    quinn::Connection,
    quinn::Connection,
    tempfile::TempDir,
    quinn::Endpoint,
    quinn::Endpoint,
) {
    let dir = cluster(&[("mover-1", Role::Mover), ("pn-1", Role::PrimaryNode)]);
    let server = bind(local(), &load(dir.path(), "mover-1")).unwrap();
    let client = bind(local(), &load(dir.path(), "pn-1")).unwrap();
    let addr = server.local_addr().unwrap();
    let srv = server.clone();
    let accepted = tokio::spawn(async move { accept(srv.accept().await.unwrap()).await });
    let (conn, _) = within("connect", connect(&client, addr, "mover-1", Role::Mover))
        .await
        .unwrap();
    let (server_conn, _) = within("accept", accepted).await.unwrap().unwrap();
    (conn, server_conn, dir, server, client)
}

fn track(seq: u64, len: usize) -> Track {
    Track {
        seq,
        volume: format!("vol-{seq}"),
        data: (0..len).map(|i| (i as u64 * 31 + seq) as u8).collect(),
    }
}

#[tokio::test]
async fn typed_messages_round_trip() {
    let (conn, server_conn, _dir, _s, _c) = pair().await;
    let sizes = [0usize, 1, 100, 65536, 4 << 20];
    let echo = tokio::spawn(async move {
        let (mut send, mut recv) = accept_bi(&server_conn, MAX_DATA_FRAME).await.unwrap();
        let mut n = 0;
        while let Some(t) = recv.recv::<Track>().await.unwrap() {
            send.send(&t).await.unwrap();
            n += 1;
        }
        send.finish().await.unwrap();
        // Dropping the last handle closes the connection at once, losing
        // anything not yet delivered: hand it back instead.
        (n, server_conn)
    });

    let (mut send, mut recv) = open_bi(&conn, MAX_DATA_FRAME).await.unwrap();
    let sent: Vec<Track> = sizes.iter().enumerate().map(|(i, &len)| track(i as u64, len)).collect();
    for t in &sent {
        within("send", send.send(t)).await.unwrap();
    }
    within("finish", send.finish()).await.unwrap();
    let mut back = Vec::new();
    while let Some(t) = within("recv", recv.recv::<Track>()).await.unwrap() {
        back.push(t);
    }
    assert_eq!(back, sent);
    assert_eq!(within("echo", echo).await.unwrap().0, sizes.len());
    // After the clean end, recv keeps saying so.
    assert!(recv.recv::<Track>().await.unwrap().is_none());
}

#[tokio::test]
async fn raw_payloads_follow_their_frames_byte_for_byte() {
    let (conn, server_conn, _dir, _s, _c) = pair().await;
    // Each frame announces the raw bytes after it (sent in several pieces).
    let payloads: Vec<Vec<u8>> = [0usize, 1, 5000, 300_000]
        .iter()
        .map(|&n| (0..n).map(|i| (i * 7 + n) as u8).collect())
        .collect();
    let receiver = tokio::spawn(async move {
        let (_send, mut recv) = accept_bi(&server_conn, MAX_CONTROL_FRAME).await.unwrap();
        let mut got = Vec::new();
        while let Some(t) = recv.recv::<Track>().await.unwrap() {
            let mut data = Vec::new();
            while (data.len() as u64) < t.seq {
                let piece = recv.recv_raw((t.seq as usize - data.len()).min(4096)).await.unwrap();
                assert!(!piece.is_empty() && piece.len() <= 4096);
                data.extend_from_slice(&piece);
            }
            got.push(data);
        }
        // Raw bytes announced but cut short by the end of the stream.
        let cut = recv.recv_raw(100).await;
        (got, cut.is_err(), server_conn)
    });
    let (mut send, _recv) = open_bi(&conn, MAX_CONTROL_FRAME).await.unwrap();
    for p in &payloads {
        let head = Track {
            seq: p.len() as u64,
            volume: String::new(),
            data: Vec::new(),
        };
        let mut pieces: Vec<bytes::Bytes> = p.chunks(70_000).map(bytes::Bytes::copy_from_slice).collect();
        within("send_with", send.send_with(&head, &mut pieces)).await.unwrap();
    }
    // One frame with its bytes sent separately, then the end.
    send.send(&Track {
        seq: 3,
        volume: String::new(),
        data: Vec::new(),
    })
    .await
    .unwrap();
    send.send_raw(bytes::Bytes::from_static(b"abc")).await.unwrap();
    send.finish().await.unwrap();
    let (got, cut_is_error, _server_conn) = within("receiver", receiver).await.unwrap();
    let mut want = payloads.clone();
    want.push(b"abc".to_vec());
    assert_eq!(got, want);
    assert!(cut_is_error, "the stream ended where raw bytes were expected");
}

#[tokio::test]
async fn malformed_frame_is_an_error_and_stops_the_stream() {
    let (conn, server_conn, _dir, _s, _c) = pair().await;
    let (mut raw, _raw_recv) = conn.open_bi().await.unwrap();
    // A valid length prefix followed by bytes that are not a Track archive.
    let garbage: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
    raw.write_all(&(garbage.len() as u32).to_be_bytes()).await.unwrap();
    raw.write_all(&garbage).await.unwrap();

    let (_send, mut recv) = within("accept_bi", accept_bi(&server_conn, MAX_CONTROL_FRAME))
        .await
        .unwrap();
    let err = within("recv", recv.recv::<Track>()).await.unwrap_err();
    match &err {
        TransportError::Frame(WireError::Invalid { what, len, .. }) => {
            assert_eq!(*what, "Track");
            assert_eq!(*len, 64);
        }
        other => panic!("expected an invalid frame error, got {other}"),
    }
    assert!(err.to_string().starts_with("invalid Track frame (64 bytes)"), "{err}");

    // The sender learns why.
    assert_eq!(
        within("stopped", raw.stopped()).await.unwrap(),
        Some(codes::MALFORMED_FRAME)
    );
    // The stream stays failed.
    assert!(matches!(recv.recv::<Track>().await, Err(TransportError::Closed { .. })));
}

#[tokio::test]
async fn frame_over_the_limit_is_too_large() {
    let (conn, server_conn, _dir, _s, _c) = pair().await;
    let (mut raw, _raw_recv) = conn.open_bi().await.unwrap();
    // Announce a frame of 1 MiB to a receiver that accepts 64 KiB.
    raw.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    raw.write_all(&[0u8; 1000]).await.unwrap();

    let (_send, mut recv) = within("accept_bi", accept_bi(&server_conn, 64 << 10)).await.unwrap();
    let err = within("recv", recv.recv::<Track>()).await.unwrap_err();
    match &err {
        TransportError::Frame(WireError::TooLarge { what, len, max }) => {
            assert_eq!((*what, *len, *max), ("Track", 1 << 20, 64 << 10));
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert_eq!(
        err.to_string(),
        "Track frame of 1048576 bytes exceeds the limit of 65536 bytes"
    );
    assert_eq!(
        within("stopped", raw.stopped()).await.unwrap(),
        Some(codes::FRAME_TOO_LARGE)
    );
}

#[tokio::test]
async fn framed_sender_sees_the_receivers_stop_code() {
    let (conn, server_conn, _dir, _s, _c) = pair().await;
    // The sender allows large frames, the receiver only small ones.
    let (mut send, _recv) = open_bi(&conn, MAX_DATA_FRAME).await.unwrap();
    let receiver = tokio::spawn(async move {
        let (_send, mut recv) = accept_bi(&server_conn, 1024).await.unwrap();
        let first = recv.recv::<Track>().await.unwrap();
        let second = recv.recv::<Track>().await;
        (first, second, server_conn)
    });
    send.send(&track(1, 10)).await.unwrap();
    send.send(&track(2, 100_000)).await.unwrap();
    let (first, second, _server_conn) = within("receiver", receiver).await.unwrap();
    assert_eq!(first, Some(track(1, 10)));
    assert!(matches!(second, Err(TransportError::Frame(WireError::TooLarge { len, max: 1024, .. })) if len > 100_000));

    // Keep sending until the STOP_SENDING arrives; it must, with code 2.
    let err = within("stop to reach the sender", async {
        loop {
            if let Err(e) = send.send(&track(3, 10)).await {
                break e;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    match err {
        TransportError::Stopped { code, meaning } => {
            assert_eq!(code, 2);
            assert_eq!(meaning, "frame too large");
        }
        other => panic!("expected Stopped, got {other}"),
    }
}

#[tokio::test]
async fn sender_refuses_a_message_over_its_own_limit() {
    let (conn, _server_conn, _dir, _s, _c) = pair().await;
    let (mut send, _recv) = open_bi(&conn, 1024).await.unwrap();
    let err = send.send(&track(1, 4096)).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Frame(WireError::TooLarge { max: 1024, .. })),
        "{err}"
    );
}

#[tokio::test]
async fn stream_ending_inside_a_frame_is_an_error() {
    let (conn, server_conn, _dir, _s, _c) = pair().await;
    for (case, bytes) in [
        ("after the prefix", vec![0, 0, 0, 40]),
        ("inside the body", vec![0, 0, 0, 40, 1, 2, 3]),
        ("inside the prefix", vec![0, 0]),
    ] {
        let (mut raw, _r) = conn.open_bi().await.unwrap();
        raw.write_all(&bytes).await.unwrap();
        raw.finish().unwrap();
        let (_send, mut recv) = within("accept_bi", accept_bi(&server_conn, MAX_CONTROL_FRAME))
            .await
            .unwrap();
        let err = within("recv", recv.recv::<Track>()).await.unwrap_err();
        assert!(
            matches!(err, TransportError::Frame(WireError::Invalid { .. })),
            "{case}: {err}"
        );
        assert!(err.to_string().contains("the stream ended"), "{case}: {err}");
    }
}

#[tokio::test]
async fn framed_constructor_wraps_raw_streams() {
    let (conn, server_conn, _dir, _s, _c) = pair().await;
    let (s, r) = conn.open_bi().await.unwrap();
    let (mut send, _recv): (FramedSend, FramedRecv) = transport::framed(s, r, MAX_CONTROL_FRAME);
    send.send(&track(9, 9)).await.unwrap();
    send.finish().await.unwrap();
    let (_s2, mut recv2) = accept_bi(&server_conn, MAX_CONTROL_FRAME).await.unwrap();
    assert_eq!(within("recv", recv2.recv::<Track>()).await.unwrap(), Some(track(9, 9)));
    assert_eq!(recv2.recv::<Track>().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_loopback_throughput_reports_a_rate() {
    // Not a timing assertion: only that the bytes arrive and a rate comes back.
    let mbps = within("throughput", transport::raw_loopback_throughput(8 << 20))
        .await
        .unwrap();
    assert!(mbps.is_finite() && mbps > 0.0, "{mbps}");
}
