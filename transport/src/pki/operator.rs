//! The PKI as an operator runs it: the CA in its own directory, one
//! directory per component, revocation and renewal.
//!
//! ```text
//! pki/ca/          0700  ca.crt, ca.key (0600), issued/<name>.crt, revoked, crl.pem
//! pki/<name>/      0700  <name>.crt, <name>.key (0600), ca.crt, crl.pem
//! ```
//!
//! A process is given only its own directory (`--pki pki/<name>`): it never
//! sees the CA key or another component's key. `revoked` lists one revoked
//! certificate per line (`<serial hex> <name>`); `crl.pem` is the X.509
//! revocation list the CA signs from it, copied into the directories it is
//! published to, where processes load it (and reload it when it changes,
//! see [`crate::crl`]).

use std::fs;
use std::path::{Path, PathBuf};

use super::{files, generate, inspect, load_ca, Component, Overwrite, Paths, PkiError, CA_CERT, CRL};

/// Where a CA directory keeps a copy of every certificate it issued.
const ISSUED: &str = "issued";
/// The list of revoked certificates in a CA directory.
const REVOKED: &str = "revoked";

/// Create `dir` (and parents) readable by its owner only.
fn private_dir(dir: &Path) -> Result<(), PkiError> {
    let werr = |source| PkiError::Write {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(werr)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(werr)?;
    }
    Ok(())
}

/// Create the cluster CA in `ca_dir` (mode 0700) unless it exists there.
pub fn init_ca(ca_dir: &Path) -> Result<(), PkiError> {
    private_dir(ca_dir)?;
    private_dir(&ca_dir.join(ISSUED))?;
    if !Paths::ca(ca_dir).state()? {
        super::create_ca(ca_dir, Overwrite::Refuse)?;
    }
    Ok(())
}

/// Issue `component` with the CA in `ca_dir` into `out_dir` (mode 0700):
/// its key and certificate, the CA certificate and the current revocation
/// list. With [`Overwrite::Refuse`] existing files of the component are an
/// error.
pub fn issue_into(ca_dir: &Path, out_dir: &Path, component: &Component, overwrite: Overwrite) -> Result<(), PkiError> {
    component.validate()?;
    private_dir(out_dir)?;
    let paths = Paths::new(out_dir, &component.name);
    if overwrite == Overwrite::Refuse {
        for path in [&paths.cert, &paths.key] {
            if path.exists() {
                return Err(PkiError::Exists {
                    path: path.clone(),
                    hint: "renew it (pki renew) to replace this component's certificate",
                });
            }
        }
    }
    let (issuer, _) = load_ca(ca_dir)?;
    super::write_leaf(&paths, component, &issuer)?;
    // The CA's record of what it issued (revocation needs the serial).
    let cert_pem = files::read(&paths.cert, "component certificate")?;
    private_dir(&ca_dir.join(ISSUED))?;
    files::write(
        &ca_dir.join(ISSUED).join(format!("{}.crt", component.name)),
        cert_pem.as_bytes(),
        files::CERT_MODE,
    )?;
    let ca_pem = files::read(&ca_dir.join(CA_CERT), "cluster CA certificate")?;
    files::write(&out_dir.join(CA_CERT), ca_pem.as_bytes(), files::CERT_MODE)?;
    publish_crl(ca_dir, out_dir)?;
    Ok(())
}

/// The component a CA issued `name` as (role and hosts from its last
/// certificate).
pub fn issued(ca_dir: &Path, name: &str) -> Result<Component, PkiError> {
    let path = ca_dir.join(ISSUED).join(format!("{name}.crt"));
    let der = files::certs(&path, &files::read(&path, "issued certificate")?)?.remove(0);
    let subject = inspect::subject(&der).map_err(|r| files::invalid(&path, r))?;
    let hosts: Vec<String> = inspect::alt_names(&der)
        .map_err(|r| files::invalid(&path, r))?
        .into_iter()
        .filter(|n| n != name)
        .collect();
    Ok(Component::new(subject.name, subject.role, hosts))
}

/// Renew `name`: a new key and certificate with the same role and hosts,
/// written over its files in `out_dir`.
pub fn renew(ca_dir: &Path, out_dir: &Path, name: &str) -> Result<Component, PkiError> {
    let component = issued(ca_dir, name)?;
    issue_into(ca_dir, out_dir, &component, Overwrite::Replace)?;
    Ok(component)
}

/// Revoke the last certificate issued to `name`: add it to the CA's list
/// and sign a new revocation list (`ca_dir/crl.pem`); returns its path.
/// Publish it with [`publish_crl`] to every directory processes load.
pub fn revoke(ca_dir: &Path, name: &str) -> Result<PathBuf, PkiError> {
    let path = ca_dir.join(ISSUED).join(format!("{name}.crt"));
    let der = files::certs(&path, &files::read(&path, "issued certificate")?)?.remove(0);
    let serial = inspect::serial(&der).map_err(|r| files::invalid(&path, r))?;
    let list_path = ca_dir.join(REVOKED);
    let mut list = match fs::read_to_string(&list_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(PkiError::Read {
                path: list_path,
                source,
            })
        }
    };
    let hex = hex(&serial);
    if !list.lines().any(|l| l.split_whitespace().next() == Some(hex.as_str())) {
        list.push_str(&format!("{hex} {name}\n"));
        files::write(&list_path, list.as_bytes(), files::CERT_MODE)?;
    }
    write_crl(ca_dir)?;
    Ok(ca_dir.join(CRL))
}

/// Sign `ca_dir/crl.pem` from the `revoked` list (an empty list is a valid,
/// empty revocation list).
fn write_crl(ca_dir: &Path) -> Result<(), PkiError> {
    let list_path = ca_dir.join(REVOKED);
    let list = fs::read_to_string(&list_path).unwrap_or_default();
    let mut serials = Vec::new();
    for (i, line) in list.lines().enumerate() {
        let Some(h) = line.split_whitespace().next() else {
            continue;
        };
        let serial = unhex(h).ok_or_else(|| {
            files::invalid(
                &list_path,
                format!("line {}: expected a hexadecimal serial, found {h:?}", i + 1),
            )
        })?;
        serials.push(serial);
    }
    let (issuer, _) = load_ca(ca_dir)?;
    let pem = generate::new_crl(&issuer, &serials, serials.len() as u64 + 1)?;
    files::write(&ca_dir.join(CRL), pem.as_bytes(), files::CERT_MODE)
}

/// Copy the CA's revocation list into `dir` (nothing if it has none yet).
pub fn publish_crl(ca_dir: &Path, dir: &Path) -> Result<(), PkiError> {
    let from = ca_dir.join(CRL);
    if !from.exists() {
        return Ok(());
    }
    let pem = files::read(&from, "revocation list")?;
    files::write(&dir.join(CRL), pem.as_bytes(), files::CERT_MODE)
}

/// Create `root/ca` and, for each component, `root/<name>` (see the module
/// documentation); existing components are kept (`init` can be rerun to
/// add components).
pub fn init_cluster(root: &Path, components: &[Component]) -> Result<(), PkiError> {
    let ca_dir = root.join("ca");
    init_ca(&ca_dir)?;
    for c in components {
        let dir = root.join(&c.name);
        if Paths::new(&dir, &c.name).state()? {
            continue;
        }
        issue_into(&ca_dir, &dir, c, Overwrite::Refuse)?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Identity;
    use crate::role::Role;

    #[test]
    fn each_component_gets_its_own_directory_and_no_ca_key() {
        let t = tempfile::tempdir().unwrap();
        let comps = [
            Component::new("station", Role::Station, ["localhost"]),
            Component::new("fe1", Role::Mover, ["localhost"]),
        ];
        init_cluster(t.path(), &comps).unwrap();
        for c in &comps {
            let dir = t.path().join(&c.name);
            let mut names: Vec<String> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(
                names,
                [
                    CA_CERT.to_string(),
                    format!("{}.crt", c.name),
                    format!("{}.key", c.name)
                ]
            );
            Identity::load(&dir, &c.name).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(t.path().join("ca")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Rerunning keeps what exists.
        let before = fs::read(t.path().join("fe1/fe1.crt")).unwrap();
        init_cluster(t.path(), &comps).unwrap();
        assert_eq!(fs::read(t.path().join("fe1/fe1.crt")).unwrap(), before);
    }

    #[test]
    fn renew_keeps_role_and_hosts_with_a_new_key() {
        let t = tempfile::tempdir().unwrap();
        let c = Component::new("pn1", Role::PrimaryNode, ["localhost", "10.0.0.7"]);
        init_cluster(t.path(), std::slice::from_ref(&c)).unwrap();
        let dir = t.path().join("pn1");
        let old = fs::read(dir.join("pn1.key")).unwrap();
        let renewed = renew(&t.path().join("ca"), &dir, "pn1").unwrap();
        assert_eq!(renewed.role, Role::PrimaryNode);
        let mut hosts = renewed.hosts.clone();
        hosts.sort();
        assert_eq!(hosts, ["10.0.0.7", "localhost"]);
        assert_ne!(fs::read(dir.join("pn1.key")).unwrap(), old);
        Identity::load(&dir, "pn1").unwrap();
    }

    #[test]
    fn revoking_lists_the_serial_in_a_signed_crl_that_identities_load() {
        let t = tempfile::tempdir().unwrap();
        let comps = [
            Component::new("station", Role::Station, ["localhost"]),
            Component::new("thief", Role::Client, ["localhost"]),
        ];
        init_cluster(t.path(), &comps).unwrap();
        let ca = t.path().join("ca");
        let crl = revoke(&ca, "thief").unwrap();
        revoke(&ca, "thief").unwrap();
        let list = fs::read_to_string(ca.join(REVOKED)).unwrap();
        assert_eq!(list.lines().count(), 1, "{list}");
        publish_crl(&ca, &t.path().join("station")).unwrap();
        let station = Identity::load(&t.path().join("station"), "station").unwrap();
        assert_eq!(station.crls().len(), 1);
        let der = files::certs(
            &t.path().join("thief/thief.crt"),
            &fs::read_to_string(t.path().join("thief/thief.crt")).unwrap(),
        )
        .unwrap()
        .remove(0);
        let serial = inspect::serial(&der).unwrap();
        assert!(crate::crl::revoked_serials(&station).contains(&serial));
        assert!(crl.exists());
    }
}
