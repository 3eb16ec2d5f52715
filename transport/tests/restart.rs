//! A process that dies without closing its connections and starts again
//! on its address: its peers' connections to the earlier start end at
//! once (a stateless reset the new start can make, its key derived from
//! the identity's private key), instead of after the idle timeout.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{cluster, load, local};
use transport::{accept, bind, connect, Role};

#[test]
fn a_restarted_server_resets_connections_to_its_earlier_start() {
    let dir = cluster(&[("be-1", Role::Mover), ("fe-1", Role::Mover)]);
    let identity = load(dir.path(), "be-1");

    // The earlier start runs on its own thread in a current-thread
    // runtime. When told to die, its future returns its handles and the
    // runtime is dropped before them: no task of it is ever polled
    // again, so not a packet leaves it (no CONNECTION_CLOSE), exactly as
    // if the process had been SIGKILLed. Dropping the handles afterwards
    // only closes the socket.
    let (addr_tx, addr_rx) = mpsc::channel();
    let (die_tx, die_rx) = tokio::sync::oneshot::channel::<()>();
    let earlier = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let handles = rt.block_on(async move {
            let server = bind(local(), &identity).expect("bind the earlier start");
            addr_tx
                .send(server.local_addr().expect("address"))
                .expect("send address");
            let conn = accept(server.accept().await.expect("incoming")).await.expect("accept");
            let _ = die_rx.await;
            (conn, server)
        });
        drop(rt);
        drop(handles);
    });
    let addr = addr_rx.recv().expect("the earlier start's address");

    let main = tokio::runtime::Runtime::new().unwrap();
    main.block_on(async {
        let client = bind(local(), &load(dir.path(), "fe-1")).unwrap();
        let (conn, _) = connect(&client, addr, "be-1", Role::Mover).await.unwrap();
        die_tx.send(()).expect("the earlier start is running");
        earlier.join().expect("the earlier start ends");

        // The same identity starts again on the same address.
        let again = bind(addr, &load(dir.path(), "be-1")).expect("binding the new start");
        let started = Instant::now();
        // Traffic on the old connection meets the new start. The client
        // may already have sent something on its own (an ACK, a
        // retransmission) that met the new start and was answered with a
        // reset; then opening a stream fails and the reason is below.
        if let Ok(mut s) = conn.open_uni().await {
            let _ = s.write_all(&[0u8; 1200]).await;
        }
        let reason = tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .expect("the connection to the earlier start ends well before the idle timeout");
        assert!(
            matches!(reason, quinn::ConnectionError::Reset),
            "ended by a stateless reset, not {reason:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        drop(again);
    });
}
