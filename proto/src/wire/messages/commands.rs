//! The command conversation: station → mover or primary node
//! ([`Command`] → [`CommandReply`]), and the channel orders it carries.

use rkyv::{Archive, Deserialize, Serialize};

use super::*;

/// Commands from the control station to movers and primary nodes.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Command {
    /// Back-end: load tape `tape_label` into a drive for writing. `new` is
    /// set for a scratch tape, which gets labelled; otherwise it is
    /// appended to. Only the label travels: the back-end finds the tape in
    /// its own library (it decides where its images live).
    MountForWrite {
        drive: String,
        tape_label: String,
        new: Option<NewTape>,
    },
    /// Back-end: load tape `tape_label` into a drive for reading.
    MountForRead { drive: String, tape_label: String },
    /// Back-end: finish (if written) and unload the tape in a drive.
    Dismount { drive: String },
    /// Front-end: accept the track stream of a backup channel and accumulate it.
    OpenBackup(BackupChannel),
    /// Front-end: serve the restore stream of a channel from its back-end.
    OpenRestore(RestoreChannel),
    /// Primary node: take a backup's snapshot of the map's tracks (protect
    /// them, capture each volume's change-map epoch). `since` empty: every
    /// track of the map; else only the tracks changed since those epochs
    /// (a differential backup). Answered with [`CommandReply::Snapshot`].
    TakeSnapshot {
        channel_id: ChannelId,
        map: AbsMap,
        since: Vec<VolumeEpoch>,
    },
    /// Primary node: send `tracks` (of the snapshot the channel took) to a
    /// front-end.
    SendTrackSet {
        channel_id: ChannelId,
        abs_id: AbsId,
        front_end: PeerAddr,
        map: AbsMap,
        tracks: TrackSet,
        /// The channel's capability, presented to the front-end.
        token: ChannelToken,
    },
    /// Front-end, after it restarted: continue backup channel `channel_id`
    /// from what its spool kept. `placed`: the sequence numbers of the
    /// ABS's segments the catalog holds (on tape; their spool files, if
    /// any are left, are not written again).
    ResumeBackup {
        channel_id: ChannelId,
        placed: Vec<SegmentSeq>,
    },
    /// Primary node: the front-end of backup channel `channel_id` restarted
    /// and resumed it: open the track stream again to `front_end` (its new
    /// start) and send what it does not hold.
    ResumeTrackSet { channel_id: ChannelId, front_end: PeerAddr },
    /// Primary node: receive a restore stream from a front-end and write it.
    ReceiveRestore(RestoreOrder),
    /// Any: forget a channel (it failed elsewhere).
    AbortChannel { channel_id: ChannelId, reason: String },
    /// Primary node: every stream of restore `job` into a file is done:
    /// give the file its name (`commit`), or remove it (the restore failed).
    FinishRestore { job: JobId, commit: bool },
    /// Front-end: build a synthetic full ABS from tracks read back from
    /// tape (FIG. 25/26). The first version of a track to arrive is kept:
    /// the station has the chain read newest first.
    OpenMerge(BackupChannel),
    /// Front-end: read these tape files of one ABS of the chain (the
    /// restore channel `read`) into the merge channel `merge_channel_id`;
    /// reported with `ChannelFinished` of `read.channel_id`.
    MergeRead {
        merge_channel_id: ChannelId,
        read: RestoreChannel,
    },
    /// Front-end: every ABS of the chain was read; seal and finish the
    /// merged ABS (it must hold every track of its map).
    FinishMerge { channel_id: ChannelId },
    /// Front-end: write the object the station holds for merge channel
    /// `channel_id` (a catalog dump, fetched with
    /// [`super::StationRequest::FetchDump`]) into it, track by track in
    /// map order; then [`Command::FinishMerge`] seals it.
    MergeFromStation { channel_id: ChannelId },
    /// Back-end: read the labels of the image at `path`, outside the
    /// library (an import's examination). `path` is absolute, without `.`
    /// or `..` components. Answered with [`CommandReply::ImageExamined`];
    /// the image is not moved.
    ExamineImage { path: String },
    /// Back-end: describe the labelled image at `path` (outside the
    /// library, checked like [`Command::ExamineImage`]'s) for an import of
    /// a tape the catalog never saw: labels, how it ends, its data files
    /// (from its DIRECTORY and CATALOG, or scanned when those are damaged)
    /// and the bytes of its ABS metadata files, which the station decodes
    /// and checks. Answered with [`CommandReply::ImageDescribed`].
    DescribeImage { path: String },
    /// Back-end: move the image at `from` (absolute, outside the library)
    /// into the library as tape `label` (the label grammar: 1 to 6 of
    /// A–Z 0–9). `blank`: the image must be empty (a new scratch tape,
    /// which the back-end labels when it is first mounted for writing);
    /// otherwise its volume label must be `label`. The back-end chooses
    /// where the image goes in its library; answered with
    /// [`CommandReply::ImageImported`]. Nothing is overwritten.
    ImportImage { from: String, label: String, blank: bool },
    /// Back-end: move tape `label`'s image out of the library to the file
    /// `to` (absolute, not existing yet; its directory is created). A tape
    /// with no image yet (a scratch tape never mounted) leaves as an empty
    /// image. Answered with [`CommandReply::ImageExported`].
    ExportImage { label: String, to: String },
    /// Back-end: copy one segment tape to tape (a pool backup, seed 000
    /// FIG. 5): read file `source.tape_file` of tape `source.tape_label`,
    /// mounted for reading in `read_drive`, verifying every checksum and
    /// that it is segment `source.seq` of ABS `abs_id` with body CRC32C
    /// `source.crc32c`; then write it as a new tape file through the
    /// writer of `write_drive` (the copy tape), verified and synced.
    /// Answered with [`CommandReply::SegmentCopied`].
    CopySegment {
        read_drive: String,
        write_drive: String,
        abs_id: AbsId,
        object_name: String,
        source: SegmentRef,
    },
    /// Back-end: read the ABS metadata of `abs_id` in file `tape_file` of
    /// tape `tape_label`, mounted for reading in `drive`. Answered with
    /// [`CommandReply::MetadataRead`] (its encoding, checked).
    ReadMetadata {
        drive: String,
        tape_label: String,
        tape_file: u32,
        abs_id: AbsId,
    },
    /// Back-end: write ABS metadata (its encoding) through the writer of
    /// `drive`. Answered with [`CommandReply::Placed`].
    WriteMetadata { drive: String, metadata: Vec<u8> },
    /// Back-end: read file `source.tape_file` of the tape mounted for
    /// reading in `drive` and check it is segment `source.seq` of ABS
    /// `abs_id` with every checksum right and body CRC32C `source.crc32c`
    /// (an audit). Answered with [`CommandReply::Ok`]; a segment that fails
    /// is a `Corrupt` failure.
    VerifySegment {
        drive: String,
        abs_id: AbsId,
        source: SegmentRef,
    },
    /// Primary node: hold host writes to `volumes` (every write to them
    /// waits) until [`Command::ReleaseWrites`] with the same `hold`, or
    /// `max_ms` passed. Answered once every volume is held: with one hold
    /// on every node, the snapshots taken meanwhile are one point in time
    /// across all of them (copy versions, seed 004).
    HoldWrites {
        hold: JobId,
        volumes: Vec<String>,
        max_ms: u32,
    },
    /// Primary node: end hold `hold` (no such hold: Ok, it ended already).
    ReleaseWrites { hold: JobId },
    /// Primary node: expect the copy stream of [`CopyReceive::sender`]
    /// and write it (see [`CopyReceive`]).
    ReceiveCopy(CopyReceive),
    /// Primary node: send a copy's tracks to the receiving node. Answered,
    /// once the receiver synced every track (and wrote its records), with
    /// [`CommandReply::Copied`]. The snapshot goes when it ends.
    SendCopy(CopySend),
    /// Agent: run a backup definition's `phase` command with `sh -c` on
    /// the host, at most `timeout_seconds` (then it is killed). The
    /// environment names the definition (`DMC_DEFINITION`), the phase
    /// (`DMC_PHASE`), the ABS (`DMC_ABS_ID`) and, after the backup, how it
    /// ended (`DMC_RESULT`: `succeeded` or `failed`). Answered with
    /// [`CommandReply::HookRan`].
    RunHook {
        definition: String,
        phase: HookPhase,
        command: String,
        timeout_seconds: u32,
        abs_id: AbsId,
        /// The post phase: whether the backup succeeded.
        succeeded: bool,
    },
}

/// A tape image as [`Command::DescribeImage`] found it (see
/// `proto::tape::volume::TapeDescription`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ImageDescription {
    pub label: String,
    pub pool: String,
    pub media_set: u64,
    pub sequence: u32,
    pub created_unix: u64,
    pub continues: bool,
    pub files: Vec<DataFile>,
    /// The ABS metadata files: tape file and bytes (not decoded).
    pub metadata: Vec<(u32, Vec<u8>)>,
    pub notes: Vec<String>,
    /// The CATALOG's records of ABSs whose metadata is on another tape.
    pub continued: Vec<crate::tape::volume::ContinuedAbs>,
}

/// One data tape file of a described image (a directory entry).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub file_number: u32,
    /// 1 segment, 2 ABS metadata (the directory's codes).
    pub kind: u8,
    pub abs_id: u64,
    pub seq: u32,
    pub bytes: u64,
    pub crc32c: u32,
    pub records: u64,
}

/// What an image outside the library holds.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ImageContents {
    /// An empty image: a blank cartridge.
    Blank,
    /// A tape whose volume label is this.
    Labelled(String),
}

/// A volume's change-map position: the map's random id and the epoch a
/// backup's snapshot captured.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VolumeEpoch {
    pub volume: String,
    pub map_id: MapId,
    pub epoch: u32,
}

/// Labels for a scratch tape.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NewTape {
    pub pool: String,
    pub media_set: MediaSetId,
    pub sequence: u32,
    pub block_size: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BackupChannel {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub object_name: String,
    pub back_end: PeerAddr,
    /// Drives of the back-end this channel writes to; more than one: its
    /// segments are split across them (parallel backup of one ABS).
    pub drives: Vec<String>,
    pub map: AbsMap,
    /// The tracks to expect: the whole map's for a full, the changed ones
    /// for a differential.
    pub track_set: TrackSet,
    /// A differential's base ABS (None: a full).
    pub base_abs_id: Option<AbsId>,
    /// A synthetic full's chain tip (None otherwise).
    pub merged_from_abs_id: Option<AbsId>,
    pub created_unix: u64,
    /// The primary node that will send the tracks (empty: none, a merge).
    pub primary: String,
    /// The channel's capability the node must present.
    pub token: ChannelToken,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RestoreChannel {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub back_end: PeerAddr,
    pub drive: String,
    /// Tape files to read, in position order.
    pub files: Vec<SegmentRef>,
    /// The primary node that will fetch the stream (empty: none, a merge).
    pub primary: String,
    /// The channel's capability the node must present.
    pub token: ChannelToken,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SegmentRef {
    pub tape_label: String,
    pub tape_file: u32,
    pub seq: SegmentSeq,
    pub crc32c: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RestoreOrder {
    pub channel_id: ChannelId,
    pub abs_id: AbsId,
    pub front_end: PeerAddr,
    pub map: AbsMap,
    pub remap: RemapTable,
    /// Destination volume names (remap `Volume(i)` = `volumes[i]`) or a file.
    pub target: RestoreTarget,
    pub tracks: u64,
    /// The restore request this stream belongs to (random, shared by every
    /// drive's stream and every member of a chain): streams of one job
    /// write into the same restore file.
    pub job: JobId,
    /// The channel's capability, presented to the front-end.
    pub token: ChannelToken,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum CommandReply {
    Ok,
    Error(Failure),
    Mounted {
        tape_label: String,
        files: u32,
        bytes: u64,
    },
    Dismounted {
        tape_label: String,
        files: u32,
        bytes: u64,
        full: bool,
        /// Records read from the tape while it was mounted for reading
        /// (volume labels and node header included).
        records_read: u64,
    },
    /// A snapshot was taken: the epochs captured and the tracks to send.
    Snapshot {
        epochs: Vec<VolumeEpoch>,
        tracks: TrackSet,
        /// Anything the station should record (e.g. a recreated change map
        /// that made every track of a volume count as changed).
        notes: Vec<String>,
    },
    /// [`Command::ExamineImage`]: what the image holds.
    ImageExamined(ImageContents),
    /// [`Command::DescribeImage`]: what the tape holds.
    ImageDescribed(Box<ImageDescription>),
    /// [`Command::ImportImage`]: the image is in the library, at `path`
    /// (the back-end's own, for the catalog and for operators).
    ImageImported {
        path: String,
    },
    /// [`Command::ExportImage`]: the image is at `path`; `blank`: the tape
    /// had no image in the library, an empty one was created there.
    ImageExported {
        path: String,
        blank: bool,
    },
    /// [`Command::CopySegment`]: the copy is tape file `tape_file` of
    /// `tape_label` (`bytes` bytes, body CRC32C `crc32c`), synced.
    SegmentCopied {
        tape_label: String,
        tape_file: u32,
        bytes: u64,
        crc32c: u32,
    },
    /// [`Command::ReadMetadata`]: the metadata's encoding.
    MetadataRead {
        metadata: Vec<u8>,
    },
    /// A data file written and synced: file `tape_file` of `tape_label`.
    Placed {
        tape_label: String,
        tape_file: u32,
    },
    /// [`Command::SendCopy`]: the copy is synced on the receiving node.
    Copied {
        tracks: u64,
        bytes: u64,
    },
    /// [`Command::RunHook`]: how the command ended (`status` None: killed,
    /// by its timeout or a signal) and the end of its output (stdout and
    /// stderr together, at most [`MAX_HOOK_OUTPUT`] bytes).
    HookRan {
        status: Option<i32>,
        output: String,
        millis: u64,
    },
}

/// The most output of a hook the agent sends back (its last bytes).
pub const MAX_HOOK_OUTPUT: usize = 16 * 1024;

impl From<crate::tape::volume::TapeDescription> for ImageDescription {
    fn from(d: crate::tape::volume::TapeDescription) -> ImageDescription {
        ImageDescription {
            label: d.label,
            pool: d.pool,
            media_set: d.media_set,
            sequence: d.sequence,
            created_unix: d.created_unix,
            continues: d.continues,
            files: d
                .files
                .into_iter()
                .map(|e| DataFile {
                    file_number: e.file_number,
                    kind: e.kind.code(),
                    abs_id: e.abs_id,
                    seq: e.seq,
                    bytes: e.bytes,
                    crc32c: e.crc32c,
                    records: e.records,
                })
                .collect(),
            metadata: d.metadata,
            notes: d.notes,
            continued: d.continued,
        }
    }
}

impl TryFrom<ImageDescription> for crate::tape::volume::TapeDescription {
    type Error = String;

    /// Checks what the wire cannot: every file kind is a known code.
    fn try_from(d: ImageDescription) -> Result<Self, String> {
        use crate::tape::directory::{DirectoryEntry, FileKind};
        let files = d
            .files
            .into_iter()
            .map(|f| {
                let kind = FileKind::from_code(f.kind).ok_or_else(|| {
                    format!(
                        "tape {} file {}: kind {} is neither 1 (segment) nor 2 (ABS metadata)",
                        d.label, f.file_number, f.kind
                    )
                })?;
                Ok(DirectoryEntry {
                    file_number: f.file_number,
                    kind,
                    abs_id: f.abs_id,
                    seq: f.seq,
                    bytes: f.bytes,
                    crc32c: f.crc32c,
                    records: f.records,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(crate::tape::volume::TapeDescription {
            label: d.label,
            pool: d.pool,
            media_set: d.media_set,
            sequence: d.sequence,
            created_unix: d.created_unix,
            continues: d.continues,
            files,
            metadata: d.metadata,
            notes: d.notes,
            continued: d.continued,
        })
    }
}
