//! The command line parses as documented.

use clap::{CommandFactory, Parser};
use proto::domain::{FailureCode, Level, PoolKind};

use super::args::{Args, Cmd, DefinitionsCmd, PoolCmd, EXIT_STATUSES};

fn level_of(args: &[&str]) -> Result<Level, clap::Error> {
    let base = ["smapp", "backup", "--primary", "p", "--object", "o", "--volume", "v"];
    let a = Args::try_parse_from(base.iter().chain(args))?;
    match a.cmd {
        Cmd::Backup(b) => Ok(b.level),
        _ => unreachable!("a backup"),
    }
}

#[test]
fn levels_parse_as_the_enum_and_synthetic_is_not_listed() {
    Args::command().debug_assert();
    assert_eq!(level_of(&[]).unwrap(), Level::Full);
    assert_eq!(level_of(&["--level", "incremental"]).unwrap(), Level::Incremental);
    assert!(level_of(&["--level", "partial"]).is_err());
    let help = Args::command()
        .find_subcommand_mut("backup")
        .expect("backup")
        .render_long_help()
        .to_string();
    assert!(help.contains("cumulative") && !help.contains("synthetic"), "{help}");
}

#[test]
fn exit_statuses_are_documented() {
    for &code in FailureCode::ALL {
        let line = format!("  {}  {}:", code.exit_status(), code);
        assert!(EXIT_STATUSES.contains(&line), "{line:?} missing from --help");
    }
}

#[test]
fn a_pool_name_is_not_the_certificate_name() {
    let a = Args::try_parse_from([
        "smapp",
        "--name",
        "operator",
        "pool",
        "define",
        "vault",
        "--kind",
        "copy",
        "--copies-of",
        "a,b",
        "--retain",
        "14",
    ])
    .unwrap();
    assert_eq!(a.name, "operator");
    match a.cmd {
        Cmd::Pool {
            cmd:
                PoolCmd::Define {
                    pool,
                    kind,
                    copies_of,
                    retain,
                },
        } => {
            assert_eq!(pool, "vault");
            assert_eq!(kind, PoolKind::Copy);
            assert_eq!(copies_of, ["a", "b"]);
            assert_eq!(retain, Some(14));
        }
        _ => unreachable!("a pool definition"),
    }
    assert!(Args::try_parse_from(["smapp", "pool", "define", "x", "--kind", "tertiary"]).is_err());
}

#[test]
fn a_definition_name_is_not_the_certificate_name() {
    let a = Args::try_parse_from([
        "smapp",
        "--name",
        "host1",
        "define",
        "nightly",
        "--primary",
        "pn1",
        "--object",
        "db",
        "--volume",
        "vol0",
        "--schedule",
        "daily 02:00",
        "--pre",
        "freeze",
    ])
    .unwrap();
    assert_eq!(a.name, "host1");
    match a.cmd {
        Cmd::Define(d) => {
            assert_eq!(d.definition, "nightly");
            assert_eq!(d.schedule, "daily 02:00");
            assert_eq!(d.pre, "freeze");
            assert_eq!(d.hook_timeout, 300);
        }
        _ => unreachable!("a definition"),
    }
    for args in [
        ["smapp", "--name", "host1", "undefine", "nightly"].as_slice(),
        ["smapp", "--name", "host1", "definitions", "run", "nightly"].as_slice(),
    ] {
        let a = Args::try_parse_from(args).unwrap();
        assert_eq!(a.name, "host1");
        match a.cmd {
            Cmd::Undefine { definition }
            | Cmd::Definitions {
                cmd: Some(DefinitionsCmd::Run { definition }),
            } => assert_eq!(definition, "nightly"),
            _ => unreachable!("undefine or run"),
        }
    }
}

#[test]
fn a_volume_pool_is_of_sources_or_targets_and_names_node_volumes() {
    use super::args::VpoolCmd;
    let parse = |extra: &[&str]| Args::try_parse_from(["smapp", "vpool", "define", "prod"].iter().chain(extra));
    match parse(&["--source", "--volumes", "pn1:vol0,pn2:vol1"]).unwrap().cmd {
        Cmd::Vpool {
            cmd: VpoolCmd::Define {
                vpool, source, volumes, ..
            },
        } => {
            assert_eq!(vpool, "prod");
            assert!(source);
            let v: Vec<String> = volumes.iter().map(ToString::to_string).collect();
            assert_eq!(v, ["pn1:vol0", "pn2:vol1"]);
        }
        _ => unreachable!("vpool define"),
    }
    assert!(parse(&["--volumes", "pn1:vol0"]).is_err(), "--source or --target");
    assert!(parse(&["--source", "--target", "--volumes", "pn1:vol0"]).is_err());
    let e = parse(&["--target", "--volumes", "vol0"])
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("expected NODE:VOLUME"), "{e}");
}
