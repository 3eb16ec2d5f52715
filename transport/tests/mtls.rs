//! Mutual TLS over real QUIC sockets on 127.0.0.1: who gets in, who does not,
//! and what each side learns about the other.

mod common;

use std::net::SocketAddr;

use common::{cluster, component, load, local, within};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use transport::{accept, bind, codes, connect, pki, require_role, Identity, Peer, Role, TransportError};

/// Accept one connection on `server` in the background.
fn serve_one(
    server: quinn::Endpoint,
) -> tokio::task::JoinHandle<(transport::Result<(quinn::Connection, Peer)>, quinn::Endpoint)> {
    tokio::spawn(async move {
        let incoming = server.accept().await.expect("endpoint open");
        (accept(incoming).await, server)
    })
}

/// Dial `addr` with a raw client config and report whether the connection
/// ends up usable. A client whose certificate is rejected may complete its
/// side of the TLS 1.3 handshake before the server has judged the
/// certificate, so "refused" means: the handshake fails, or the connection
/// is closed right after.
async fn raw_dial(config: quinn::ClientConfig, addr: SocketAddr) -> Result<(), String> {
    let endpoint = quinn::Endpoint::client(local()).expect("client endpoint");
    let conn = endpoint
        .connect_with(config, addr, "station-1")
        .expect("start connecting")
        .await
        .map_err(|e| e.to_string())?;
    let err = within("refused connection to close", conn.closed()).await;
    Err(err.to_string())
}

#[tokio::test]
async fn handshake_both_sides_see_name_and_role() {
    let dir = cluster(&[("station-1", Role::Station), ("mover-1", Role::Mover)]);
    let server = bind(local(), &load(dir.path(), "station-1")).unwrap();
    let client = bind(local(), &load(dir.path(), "mover-1")).unwrap();
    let server_addr = server.local_addr().unwrap();
    let client_addr = client.local_addr().unwrap();
    let accepted = serve_one(server);

    let (conn, server_peer) = within("connect", connect(&client, server_addr, "station-1", Role::Station))
        .await
        .unwrap();
    assert_eq!(server_peer.name, "station-1");
    assert_eq!(server_peer.role, Role::Station);
    assert_eq!(server_peer.addr, server_addr);

    let (server_conn, client_peer) = within("accept", accepted).await.unwrap().0.unwrap();
    assert_eq!(client_peer.name, "mover-1");
    assert_eq!(client_peer.role, Role::Mover);
    assert_eq!(client_peer.addr, client_addr);
    assert_eq!(transport::peer(&server_conn).unwrap(), client_peer);
    assert_eq!(transport::peer(&conn).unwrap(), server_peer);
    assert_eq!(
        conn.handshake_data()
            .unwrap()
            .downcast::<quinn::crypto::rustls::HandshakeData>()
            .unwrap()
            .protocol
            .unwrap(),
        b"dmc/1"
    );

    // The station authorizes on the role it saw.
    assert!(require_role(&client_peer, &[Role::Mover], "register as a data mover").is_ok());
    let refused = require_role(&client_peer, &[Role::Operator], "replace a tape").unwrap_err();
    assert!(matches!(refused, TransportError::Refused { .. }));
    assert_eq!(
        refused.to_string(),
        "refused: peer mover-1 with role mover may not replace a tape (allowed roles: operator)"
    );
}

#[tokio::test]
async fn a_client_reaches_the_component_it_names_and_no_other() {
    let dir = cluster(&[("station-1", Role::Station), ("client-1", Role::Client)]);
    let server = bind(local(), &load(dir.path(), "station-1")).unwrap();
    let client = bind(local(), &load(dir.path(), "client-1")).unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let serving = tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            let _ = tx.send(accept(incoming).await);
        }
    });
    let (_conn, peer) = within("connect", connect(&client, addr, "station-1", Role::Station))
        .await
        .unwrap();
    assert_eq!(peer.name, "station-1");
    let (_server_conn, client_peer) = within("accept", rx.recv()).await.unwrap().unwrap();
    assert_eq!(client_peer.role, Role::Client);
    // Its other host names pass TLS, but connect() wants the component it
    // meant to reach: "localhost" could be any component on this host.
    for name in ["localhost", "127.0.0.1"] {
        let err = within("connect", connect(&client, addr, name, Role::Station))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Refused { .. }), "{err}");
        assert!(err.to_string().contains("its certificate names station-1"), "{err}");
    }

    // A name the certificate does not carry fails the handshake.
    let err = within("connect", connect(&client, addr, "other-host", Role::Station))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("other-host"), "{err}");
    serving.abort();
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let dir = cluster(&[("station-1", Role::Station), ("client-1", Role::Client)]);
    let station = load(dir.path(), "station-1");
    let server = bind(local(), &station).unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = serve_one(server);

    let dialled = raw_dial(common::client_without_certificate(&station), addr).await;
    assert!(
        dialled.is_err(),
        "a client without a certificate got a usable connection"
    );

    let err = within("accept", accepted).await.unwrap().0.unwrap_err();
    println!("server saw: {err}");
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1"), "{msg}");
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let dir = cluster(&[("station-1", Role::Station)]);
    // Another cluster's CA issued a certificate with a plausible name and role.
    let other = cluster(&[("mover-1", Role::Mover)]);
    let rogue = load(other.path(), "mover-1");
    let station = load(dir.path(), "station-1");
    // The rogue trusts our CA, so only the server's check can stop it.
    let rogue = Identity::new(
        rogue.cert_chain().to_vec(),
        rogue.key().clone_key(),
        station.ca_certs().to_vec(),
    )
    .unwrap();

    let server = bind(local(), &station).unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = serve_one(server);

    let dialled = raw_dial(transport::client_config(&rogue).unwrap(), addr).await;
    assert!(
        dialled.is_err(),
        "a certificate from another CA got a usable connection"
    );
    let err = within("accept", accepted).await.unwrap().0.unwrap_err();
    println!("server saw: {err}");
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
}

#[tokio::test]
async fn self_signed_client_certificate_is_refused() {
    let dir = cluster(&[("station-1", Role::Station)]);
    let station = load(dir.path(), "station-1");

    // Self-signed, claiming to be an operator.
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["op-1".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "op-1");
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, "operator");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let forged = Identity::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        station.ca_certs().to_vec(),
    )
    .unwrap();
    assert_eq!(forged.role(), Role::Operator);

    let server = bind(local(), &station).unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = serve_one(server);
    let dialled = raw_dial(transport::client_config(&forged).unwrap(), addr).await;
    assert!(dialled.is_err(), "a self-signed certificate got a usable connection");
    let err = within("accept", accepted).await.unwrap().0.unwrap_err();
    println!("server saw: {err}");
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
}

#[tokio::test]
async fn client_does_not_trust_a_server_from_another_ca() {
    let dir = cluster(&[("mover-1", Role::Mover)]);
    let other = cluster(&[("station-1", Role::Station)]);
    let server = bind(local(), &load(other.path(), "station-1")).unwrap();
    let client = bind(local(), &load(dir.path(), "mover-1")).unwrap();
    let addr = server.local_addr().unwrap();
    let _accepted = serve_one(server);
    let err = within("connect", connect(&client, addr, "station-1", Role::Station))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("station-1"), "{err}");
}

#[tokio::test]
async fn server_with_the_wrong_role_is_refused() {
    let dir = cluster(&[("mover-1", Role::Mover), ("pn-1", Role::PrimaryNode)]);
    // A mover answers where the primary node expected the station.
    let server = bind(local(), &load(dir.path(), "mover-1")).unwrap();
    let client = bind(local(), &load(dir.path(), "pn-1")).unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = serve_one(server);

    let err = within("connect", connect(&client, addr, "mover-1", Role::Station))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Refused { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("refused: expected server mover-1 at {addr} to have role station, found mover-1 with role mover")
    );

    // The server saw a valid client, then the client closed with REFUSED.
    let (conn, peer) = within("accept", accepted).await.unwrap().0.unwrap();
    assert_eq!(peer.role, Role::PrimaryNode);
    match within("close", conn.closed()).await {
        quinn::ConnectionError::ApplicationClosed(close) => assert_eq!(close.error_code, codes::REFUSED),
        other => panic!("expected an application close with code 3, got {other}"),
    }
}

#[tokio::test]
async fn ephemeral_identities_connect() {
    let ids = pki::ephemeral(&[component("a", Role::Station), component("b", Role::Operator)]).unwrap();
    let server = bind(local(), &ids[0]).unwrap();
    let client = bind(local(), &ids[1]).unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = serve_one(server);
    let (_conn, peer) = within("connect", connect(&client, addr, "a", Role::Station))
        .await
        .unwrap();
    assert_eq!(peer.name, "a");
    assert_eq!(
        within("accept", accepted).await.unwrap().0.unwrap().1.role,
        Role::Operator
    );
}
