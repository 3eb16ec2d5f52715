use std::path::Path;

use proptest::prelude::*;
use proto::domain::FailureCode;

use super::*;
use crate::backend::device::images::MemoryImages;

/// A tape this system wrote, labelled GOLD01.
const GOLDEN: &[u8] = include_bytes!("../../../../proto/tests/golden/small.tap");

fn images() -> MemoryImages {
    let mut m = MemoryImages::new("/lib");
    m.outside.insert("/vault/GOLD01.tap".into(), GOLDEN.to_vec());
    m.outside.insert("/in/blank.tap".into(), Vec::new());
    m.outside.insert("/in/junk.tap".into(), b"not a tape".to_vec());
    m
}

fn code(r: Result<CommandReply, Failure>) -> FailureCode {
    r.expect_err("expected a failure").code
}

#[test]
fn examine_reads_the_label_or_finds_a_blank() {
    let mut m = images();
    let ex = |m: &mut MemoryImages, p: &str| exec(m, &Command::ExamineImage { path: p.into() });
    assert_eq!(
        ex(&mut m, "/vault/GOLD01.tap").unwrap(),
        CommandReply::ImageExamined(ImageContents::Labelled("GOLD01".into()))
    );
    assert_eq!(
        ex(&mut m, "/in/blank.tap").unwrap(),
        CommandReply::ImageExamined(ImageContents::Blank)
    );
    assert_eq!(code(ex(&mut m, "/in/junk.tap")), FailureCode::Corrupt);
    assert_eq!(code(ex(&mut m, "/in/none.tap")), FailureCode::NotFound);
    assert_eq!(code(ex(&mut m, "in/blank.tap")), FailureCode::Invalid);
    assert_eq!(code(ex(&mut m, "/in/../in/blank.tap")), FailureCode::Invalid);
    assert_eq!(code(ex(&mut m, "/lib/GOLD01.tap")), FailureCode::Refused);
}

#[test]
fn import_moves_a_matching_image_into_the_library() {
    let mut m = images();
    let import = |m: &mut MemoryImages, from: &str, label: &str, blank| {
        exec(
            m,
            &Command::ImportImage {
                from: from.into(),
                label: label.into(),
                blank,
            },
        )
    };
    // The label must match what the image holds.
    assert_eq!(
        code(import(&mut m, "/vault/GOLD01.tap", "GOLD02", false)),
        FailureCode::Conflict
    );
    assert_eq!(
        code(import(&mut m, "/vault/GOLD01.tap", "GOLD01", true)),
        FailureCode::Conflict
    );
    assert_eq!(
        code(import(&mut m, "/in/blank.tap", "DM0001", false)),
        FailureCode::Conflict
    );
    assert_eq!(
        code(import(&mut m, "/in/blank.tap", "../../x", true)),
        FailureCode::Invalid
    );
    assert_eq!(m.outside.len(), 3, "nothing moved");
    assert_eq!(
        import(&mut m, "/vault/GOLD01.tap", "GOLD01", false).unwrap(),
        CommandReply::ImageImported {
            path: "/lib/GOLD01.tap".into()
        }
    );
    assert_eq!(m.library["GOLD01"], GOLDEN);
    assert!(!m.outside.contains_key(Path::new("/vault/GOLD01.tap")));
    // A blank becomes the scratch tape the station named.
    import(&mut m, "/in/blank.tap", "DM0007", true).unwrap();
    assert_eq!(m.library["DM0007"], Vec::<u8>::new());
    // Never over an image already in the library.
    m.outside.insert("/in/copy.tap".into(), GOLDEN.to_vec());
    assert_eq!(
        code(import(&mut m, "/in/copy.tap", "GOLD01", false)),
        FailureCode::Conflict
    );
    assert!(
        m.outside.contains_key(Path::new("/in/copy.tap")),
        "a refused image stays"
    );
}

#[test]
fn export_moves_the_image_out_and_back() {
    let mut m = images();
    m.library.insert("GOLD01".into(), GOLDEN.to_vec());
    let export = |m: &mut MemoryImages, label: &str, to: &str| {
        exec(
            m,
            &Command::ExportImage {
                label: label.into(),
                to: to.into(),
            },
        )
    };
    assert_eq!(
        code(export(&mut m, "GOLD01", "/vault/GOLD01.tap")),
        FailureCode::Conflict
    );
    assert_eq!(
        code(export(&mut m, "GOLD01", "/lib/x/GOLD01.tap")),
        FailureCode::Refused
    );
    assert_eq!(
        code(export(&mut m, "GOLD01", "/out/../lib/GOLD01.tap")),
        FailureCode::Invalid
    );
    assert_eq!(code(export(&mut m, "gold01", "/out/GOLD01.tap")), FailureCode::Invalid);
    assert_eq!(
        export(&mut m, "GOLD01", "/out/GOLD01.tap").unwrap(),
        CommandReply::ImageExported {
            path: "/out/GOLD01.tap".into(),
            blank: false
        }
    );
    assert!(m.library.is_empty());
    // A tape never mounted leaves as a blank image.
    assert_eq!(
        export(&mut m, "DM0003", "/out/DM0003.tap").unwrap(),
        CommandReply::ImageExported {
            path: "/out/DM0003.tap".into(),
            blank: true
        }
    );
    // Undo: the station puts it back when its catalog fails.
    exec(
        &mut m,
        &Command::ImportImage {
            from: "/out/GOLD01.tap".into(),
            label: "GOLD01".into(),
            blank: false,
        },
    )
    .unwrap();
    assert_eq!(m.library["GOLD01"], GOLDEN);
}

#[test]
fn other_commands_are_not_library_commands() {
    let cmd = Command::Dismount { drive: "d0".into() };
    assert!(!is_library_command(&cmd));
    assert_eq!(code(exec(&mut images(), &cmd)), FailureCode::Invalid);
}

#[test]
fn a_back_end_without_a_library_refuses() {
    let cmd = Command::ExamineImage { path: "/x.tap".into() };
    assert!(is_library_command(&cmd));
    let CommandReply::Error(f) = serve("be1", None, &cmd) else {
        panic!("expected an error")
    };
    assert_eq!(f.code, FailureCode::Refused);
    assert!(f.message.contains("--library"), "{}", f.message);
}

#[test]
fn the_directory_library_never_writes_outside_its_paths() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::write(lib.join("DM0001.tap"), GOLDEN).unwrap();
    let vault = dir.path().join("vault");
    let serve = |cmd: Command| serve("be1", Some(&lib), &cmd);
    let to = vault.join("DM0001.tap").to_string_lossy().into_owned();
    let reply = serve(Command::ExportImage {
        label: "DM0001".into(),
        to: to.clone(),
    });
    assert_eq!(
        reply,
        CommandReply::ImageExported {
            path: to.clone(),
            blank: false
        }
    );
    assert!(!lib.join("DM0001.tap").exists());
    // Into the library by another name, through a link: refused.
    std::os::unix::fs::symlink(&lib, dir.path().join("sneaky")).unwrap();
    let sneaky = dir.path().join("sneaky/X.tap").to_string_lossy().into_owned();
    let CommandReply::Error(f) = serve(Command::ExportImage {
        label: "DM0002".into(),
        to: sneaky,
    }) else {
        panic!("expected a refusal")
    };
    assert_eq!(f.code, FailureCode::Refused, "{}", f.message);
    assert!(!lib.join("X.tap").exists());
    // Back in: the label on the tape is GOLD01, not DM0001.
    let CommandReply::Error(f) = serve(Command::ImportImage {
        from: to.clone(),
        label: "DM0001".into(),
        blank: false,
    }) else {
        panic!("expected a conflict")
    };
    assert_eq!(f.code, FailureCode::Conflict, "{}", f.message);
    let reply = serve(Command::ImportImage {
        from: to.clone(),
        label: "GOLD01".into(),
        blank: false,
    });
    let path = lib.join("GOLD01.tap").to_string_lossy().into_owned();
    assert_eq!(reply, CommandReply::ImageImported { path });
    assert!(!Path::new(&to).exists());
    let names: Vec<_> = std::fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["GOLD01.tap"]);
}

proptest! {
    #[test]
    fn labels_are_accepted_exactly_by_the_tape_label_grammar(label in "\\PC{0,8}") {
        let grammar = !label.is_empty()
            && label.len() <= 6
            && label.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        prop_assert_eq!(check_label(&label).is_ok(), grammar);
        if grammar {
            // A label is always one file name in the library.
            let p = MemoryImages::new("/lib").image_of(&label);
            prop_assert_eq!(p.parent(), Some(Path::new("/lib")));
        }
    }

    #[test]
    fn accepted_outside_paths_are_absolute_and_never_climb(raw in "[/a-z.]{0,12}") {
        if let Ok(p) = outside_path(&raw) {
            prop_assert!(p.is_absolute());
            prop_assert!(p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))));
            prop_assert!(!raw.split('/').any(|c| c == ".."));
        }
    }

    #[test]
    fn a_failed_import_moves_nothing(label in "[A-Z0-9a-z./]{0,8}", blank: bool) {
        let mut m = images();
        let before = (m.library.clone(), m.outside.clone());
        let cmd = Command::ImportImage { from: "/vault/GOLD01.tap".into(), label: label.clone(), blank };
        match exec(&mut m, &cmd) {
            Ok(_) => {
                prop_assert!(label == "GOLD01" && !blank);
                prop_assert!(m.library.contains_key("GOLD01"));
            }
            Err(_) => prop_assert_eq!((m.library.clone(), m.outside.clone()), before),
        }
    }
}
