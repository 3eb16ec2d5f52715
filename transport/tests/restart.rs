//! A process that dies without closing its connections and starts again
//! on its address: its peers' connections to the earlier start end at
//! once (a stateless reset the new start can make, its key derived from
//! the identity's private key), instead of after the idle timeout.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, load, local};
use transport::{accept, bind, connect, Role};

#[test]
fn a_restarted_server_resets_connections_to_its_earlier_start() {
    let dir = cluster(&[("be-1", Role::Mover), ("fe-1", Role::Mover)]);
    // The earlier start runs in its own runtime, shut down without a
    // word on the wire: a SIGKILL as far as peers can tell.
    let first = tokio::runtime::Runtime::new().unwrap();
    let (server, addr) = first.block_on(async {
        let server = bind(local(), &load(dir.path(), "be-1")).unwrap();
        let addr = server.local_addr().unwrap();
        (server, addr)
    });
    let main = tokio::runtime::Runtime::new().unwrap();
    main.block_on(async {
        let client = bind(local(), &load(dir.path(), "fe-1")).unwrap();
        let accepting = first.spawn(async move {
            let conn = accept(server.accept().await.unwrap()).await.unwrap();
            std::future::pending::<()>().await;
            drop((conn, server));
        });
        let (conn, _) = connect(&client, addr, "be-1", Role::Mover).await.unwrap();
        std::mem::forget(accepting);
        first.shutdown_background();

        // The same identity starts again on the same address.
        // (The earlier start's socket closes as its runtime winds down.)
        let deadline = Instant::now() + Duration::from_secs(5);
        let again = loop {
            match bind(addr, &load(dir.path(), "be-1")) {
                Ok(e) => break e,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("binding the new start: {e}"),
            }
        };
        let started = Instant::now();
        // Traffic on the old connection meets the new start.
        let mut s = conn.open_uni().await.unwrap();
        let _ = s.write_all(&[0u8; 1200]).await;
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
