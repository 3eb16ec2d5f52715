//! The cluster PKI on disk: what `init`, `issue` and `reissue` create, what
//! they refuse, and how `Identity::load` reports bad files.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{component, load};
use transport::pki::{self, Component, Overwrite};
use transport::{Identity, PkiError, Role};
use x509_parser::prelude::*;

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_ca_and_component_files() {
    let dir = tempfile::tempdir().unwrap();
    let components = [
        component("station-1", Role::Station),
        Component::new("pn-1", Role::PrimaryNode, ["pn1.example.net", "10.1.2.3", "::1"]),
    ];
    pki::init(dir.path(), &components).unwrap();
    for f in ["ca.crt", "station-1.crt", "pn-1.crt"] {
        assert!(
            fs::read_to_string(dir.path().join(f))
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----"),
            "{f}"
        );
    }
    for f in ["ca.key", "station-1.key", "pn-1.key"] {
        assert!(
            fs::read_to_string(dir.path().join(f))
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----"),
            "{f}"
        );
        assert_eq!(mode(&dir.path().join(f)), 0o600, "{f}");
    }

    // CA: a CA, may sign certificates, valid for about ten years.
    let ca_pem = fs::read(dir.path().join("ca.crt")).unwrap();
    let (_, ca_pem) = parse_x509_pem(&ca_pem).unwrap();
    let ca = ca_pem.parse_x509().unwrap();
    assert!(ca.is_ca());
    assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / (365 * 86400);
    assert_eq!(years, 10);

    // Leaf: CN = name, OU = role, SANs = name + hosts, client and server auth.
    let pem = fs::read(dir.path().join("pn-1.crt")).unwrap();
    let (_, pem) = parse_x509_pem(&pem).unwrap();
    let leaf = pem.parse_x509().unwrap();
    let cn: Vec<_> = leaf.subject().iter_common_name().map(|a| a.as_str().unwrap()).collect();
    let ou: Vec<_> = leaf
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["pn-1"]);
    assert_eq!(ou, ["primary-node"]);
    assert!(!leaf.is_ca());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && eku.server_auth);
    let sans: Vec<String> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) => format!("ip:{b:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        [
            "pn-1",
            "pn1.example.net",
            "ip:[10, 1, 2, 3]",
            "ip:[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]"
        ]
    );
    assert!(leaf.verify_signature(Some(ca.public_key())).is_ok());

    let id = load(dir.path(), "pn-1");
    assert_eq!((id.name(), id.role()), ("pn-1", Role::PrimaryNode));
    assert_eq!(id.ca_certs().len(), 1);
}

#[test]
fn init_is_idempotent_and_never_replaces_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = [component("station-1", Role::Station)];
    pki::init(dir.path(), &first).unwrap();
    let ca = fs::read(dir.path().join("ca.crt")).unwrap();
    let cert = fs::read(dir.path().join("station-1.crt")).unwrap();

    // Same components again, plus a new one: old files untouched, new one issued by the same CA.
    pki::init(
        dir.path(),
        &[component("station-1", Role::Station), component("mover-1", Role::Mover)],
    )
    .unwrap();
    assert_eq!(fs::read(dir.path().join("ca.crt")).unwrap(), ca);
    assert_eq!(fs::read(dir.path().join("station-1.crt")).unwrap(), cert);
    assert!(dir.path().join("mover-1.crt").exists());
}

#[test]
fn init_refuses_an_existing_component_that_no_longer_matches() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path(), &[component("node-1", Role::Mover)]).unwrap();
    let err = pki::init(dir.path(), &[component("node-1", Role::PrimaryNode)]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("node-1.crt"), "{msg}");
    assert!(
        msg.contains("expected a certificate for node-1 (primary-node), found one for node-1 (mover)"),
        "{msg}"
    );
    assert!(msg.contains("reissue"), "{msg}");

    let err = pki::init(dir.path(), &[Component::new("node-1", Role::Mover, ["other.host"])]).unwrap_err();
    assert!(err.to_string().contains("expected names"), "{err}");

    pki::reissue(dir.path(), &component("node-1", Role::PrimaryNode)).unwrap();
    assert_eq!(load(dir.path(), "node-1").role(), Role::PrimaryNode);
    pki::init(dir.path(), &[component("node-1", Role::PrimaryNode)]).unwrap();
}

#[test]
fn create_ca_refuses_to_overwrite_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path(), &[component("mover-1", Role::Mover)]).unwrap();
    let ca = fs::read(dir.path().join("ca.crt")).unwrap();
    let err = pki::create_ca(dir.path(), Overwrite::Refuse).unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("ca.crt already exists"), "{err}");
    assert_eq!(fs::read(dir.path().join("ca.crt")).unwrap(), ca);

    pki::create_ca(dir.path(), Overwrite::Replace).unwrap();
    assert_ne!(fs::read(dir.path().join("ca.crt")).unwrap(), ca);
    // The old component certificate is no longer from this CA.
    let err = pki::init(dir.path(), &[component("mover-1", Role::Mover)]).unwrap_err();
    assert!(err.to_string().contains("mover-1.crt"), "{err}");
    assert!(err.to_string().contains("signature does not verify"), "{err}");
}

#[test]
fn a_lone_ca_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path(), &[]).unwrap();
    fs::remove_file(dir.path().join("ca.key")).unwrap();
    let err = pki::init(dir.path(), &[component("m", Role::Mover)]).unwrap_err();
    assert!(matches!(err, PkiError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("ca.key"), "{err}");
}

#[test]
fn issue_adds_components_and_reissue_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let c = component("client-7", Role::Client);
    // No CA yet: issue names the missing file.
    let err = pki::issue(dir.path(), &c).unwrap_err();
    assert!(
        matches!(err, PkiError::Missing { .. }) && err.to_string().contains("ca.crt"),
        "{err}"
    );

    pki::init(dir.path(), &[]).unwrap();
    pki::issue(dir.path(), &c).unwrap();
    let first = fs::read(dir.path().join("client-7.key")).unwrap();
    let err = pki::issue(dir.path(), &c).unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    pki::reissue(dir.path(), &c).unwrap();
    assert_ne!(fs::read(dir.path().join("client-7.key")).unwrap(), first);
    assert_eq!(mode(&dir.path().join("client-7.key")), 0o600);
    assert_eq!(load(dir.path(), "client-7").role(), Role::Client);
}

#[test]
fn bad_component_descriptions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, hosts) in [
        ("", vec![]),
        ("../x", vec![]),
        ("-x", vec![]),
        ("ca", vec![]),
        ("ok", vec!["not a host"]),
    ] {
        let err = pki::init(dir.path(), &[Component::new(name, Role::Mover, hosts)]).unwrap_err();
        assert!(matches!(err, PkiError::Component { .. }), "{name:?}: {err}");
    }
    let err = pki::init(dir.path(), &[component("a", Role::Mover), component("a", Role::Client)]).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
}

#[test]
fn identity_load_names_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(
        dir.path(),
        &[component("mover-1", Role::Mover), component("mover-2", Role::Mover)],
    )
    .unwrap();
    let p = dir.path();

    let err = Identity::load(p, "nobody").unwrap_err();
    assert!(matches!(err, PkiError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("nobody.crt: file is missing"), "{err}");

    fs::remove_file(p.join("mover-2.key")).unwrap();
    let err = Identity::load(p, "mover-2").unwrap_err();
    assert!(err.to_string().contains("mover-2.key: file is missing"), "{err}");

    fs::write(p.join("mover-2.key"), "not a key").unwrap();
    let err = Identity::load(p, "mover-2").unwrap_err();
    assert!(matches!(err, PkiError::Invalid { .. }), "{err}");
    assert!(
        err.to_string().contains("mover-2.key: expected a PEM private key"),
        "{err}"
    );

    fs::write(p.join("mover-2.crt"), "garbage").unwrap();
    let err = Identity::load(p, "mover-2").unwrap_err();
    assert!(
        err.to_string()
            .contains("mover-2.crt: expected a PEM CERTIFICATE block, found none"),
        "{err}"
    );

    // A certificate file copied under another name.
    fs::copy(p.join("mover-1.crt"), p.join("mover-3.crt")).unwrap();
    fs::copy(p.join("mover-1.key"), p.join("mover-3.key")).unwrap();
    let err = Identity::load(p, "mover-3").unwrap_err();
    assert!(
        err.to_string()
            .contains("expected a certificate for component \"mover-3\", found one for \"mover-1\""),
        "{err}"
    );

    fs::remove_file(p.join("ca.crt")).unwrap();
    let err = Identity::load(p, "mover-1").unwrap_err();
    assert!(err.to_string().contains("ca.crt: file is missing"), "{err}");
}
