//! Every channel this front-end holds state for: backup and restore
//! channels the station opened and whose stream has not started yet,
//! backup channels kept in the spool across a restart (and, once the
//! station resumed one, where its stream continues), running streams and
//! merges.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use proto::domain::{ChannelId, SegmentSeq};
use proto::wire::{BackupChannel, RestoreChannel};
use tokio::sync::Mutex;

use super::context::FrontEnd;
use super::merge::Merges;
use super::resume::{self, Recovered, ResumePlan};
use super::running::Running;

pub struct Channels {
    backups: Mutex<HashMap<ChannelId, BackupChannel>>,
    /// Backup channels found in the spool at start, and once the station
    /// resumed one ([`proto::wire::Command::ResumeBackup`]), where its
    /// stream continues.
    recovered: Mutex<HashMap<ChannelId, (Recovered, Option<ResumePlan>)>>,
    restores: Mutex<HashMap<ChannelId, RestoreChannel>>,
    /// Running merges (synthetic fulls).
    pub merges: Arc<Merges>,
    /// Channels whose streams run here.
    pub running: Arc<Running>,
}

impl Channels {
    /// The channels of a front-end that found `recovered` in its spool.
    pub fn new(recovered: Vec<Recovered>) -> Channels {
        Channels {
            backups: Mutex::new(HashMap::new()),
            recovered: Mutex::new(recovered.into_iter().map(|r| (r.ch.channel_id, (r, None))).collect()),
            restores: Mutex::new(HashMap::new()),
            merges: Arc::new(Merges::default()),
            running: Arc::new(Running::default()),
        }
    }

    /// Every channel held here: opened, kept, running or merging.
    pub async fn ids(&self) -> Vec<ChannelId> {
        let mut all: Vec<ChannelId> = self.backups.lock().await.keys().copied().collect();
        all.extend(self.recovered.lock().await.keys().copied());
        all.extend(self.restores.lock().await.keys().copied());
        all.extend(self.merges.ids().await);
        all.extend(self.running.ids());
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The station opened a backup channel; it is kept in the spool, so
    /// that a restart can resume it.
    pub async fn open_backup(&self, fe: &FrontEnd, ch: BackupChannel) -> Result<()> {
        ch.map.validate().context("invalid ABS map")?;
        tokio::task::block_in_place(|| resume::save_channel(fe.segment_spool().as_ref(), &ch))
            .context("keeping the channel in the spool")?;
        tracing::info!(channel = %ch.channel_id, abs = %ch.abs_id, object = %ch.object_name, "backup channel opened");
        self.backups.lock().await.insert(ch.channel_id, ch);
        Ok(())
    }

    /// The station opened a restore channel.
    pub async fn open_restore(&self, ch: RestoreChannel) {
        tracing::info!(
            channel = %ch.channel_id,
            abs = %ch.abs_id,
            files = ch.files.len(),
            "restore channel opened"
        );
        self.restores.lock().await.insert(ch.channel_id, ch);
    }

    /// The station resumes a backup channel this front-end kept in its
    /// spool when it restarted: plan where its stream continues (each
    /// sealed file not on tape is verified), or drop it with the reason.
    pub async fn resume_backup(&self, fe: &FrontEnd, channel_id: ChannelId, placed: &[SegmentSeq]) -> Result<()> {
        let mut rec = self.recovered.lock().await;
        let (r, plan) = rec
            .get_mut(&channel_id)
            .ok_or_else(|| anyhow!("front-end {} kept no backup channel {channel_id} in its spool", fe.name))?;
        let abs_id = r.ch.abs_id;
        let segments = fe.segment_spool();
        let planned = tokio::task::block_in_place(|| {
            resume::plan(&r.journal, placed, |e| {
                resume::verify_sealed(segments.as_ref(), abs_id, e)
            })
        });
        match planned {
            Ok(p) => {
                tracing::info!(
                    %channel_id,
                    abs = %abs_id,
                    frames = p.frames,
                    on_tape = p.placed.len(),
                    to_write = p.requeue.len(),
                    dropped = p.dropped.len(),
                    "resuming a backup channel from the spool"
                );
                *plan = Some(p);
                Ok(())
            }
            Err(e) => {
                rec.remove(&channel_id);
                let _ = std::fs::remove_dir_all(fe.spool.abs_dir(abs_id));
                Err(e)
            }
        }
    }

    /// Take backup channel `channel_id` for its stream if `opens` it: an
    /// open one, or (`resume`) one kept in the spool that the station
    /// resumed, with where its stream continues.
    pub async fn take_backup(
        &self,
        channel_id: ChannelId,
        resume: bool,
        opens: impl Fn(&BackupChannel) -> bool,
    ) -> Option<(BackupChannel, Option<ResumePlan>)> {
        if resume {
            let mut rec = self.recovered.lock().await;
            let ok = rec
                .get(&channel_id)
                .is_some_and(|(r, plan)| plan.is_some() && opens(&r.ch));
            if ok {
                rec.remove(&channel_id).map(|(r, plan)| (r.ch, plan))
            } else {
                None
            }
        } else {
            let mut open = self.backups.lock().await;
            if open.get(&channel_id).is_some_and(opens) {
                open.remove(&channel_id).map(|ch| (ch, None))
            } else {
                None
            }
        }
    }

    /// Take restore channel `channel_id` for its stream if `opens` it.
    pub async fn take_restore(
        &self,
        channel_id: ChannelId,
        opens: impl Fn(&RestoreChannel) -> bool,
    ) -> Option<RestoreChannel> {
        let mut open = self.restores.lock().await;
        if open.get(&channel_id).is_some_and(opens) {
            open.remove(&channel_id)
        } else {
            None
        }
    }

    /// The station aborted channel `channel_id`: whatever of it is here
    /// stops or goes.
    pub async fn abort(&self, fe: &FrontEnd, channel_id: ChannelId) {
        // A backup whose stream never started: its spool goes.
        let unstarted = self.backups.lock().await.remove(&channel_id).map(|ch| ch.abs_id);
        let kept = self
            .recovered
            .lock()
            .await
            .remove(&channel_id)
            .map(|(r, _)| r.ch.abs_id);
        for abs_id in unstarted.into_iter().chain(kept) {
            let _ = std::fs::remove_dir_all(fe.spool.abs_dir(abs_id));
        }
        self.restores.lock().await.remove(&channel_id);
        // A running stream stops and fails with the station's reason.
        self.running.cancel(channel_id);
        // A merge stops: dropping its queue ends its task, which fails it.
        self.merges.stop(channel_id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: u64, primary: &str) -> BackupChannel {
        crate::frontend::test_fixtures::backup_channel(id, id + 100, primary)
    }

    #[tokio::test]
    async fn a_channel_is_taken_once_and_only_by_whom_it_opens() {
        let kept = Recovered {
            ch: backup(2, "pn1"),
            journal: Vec::new(),
        };
        let channels = Channels::new(vec![kept]);
        channels
            .backups
            .lock()
            .await
            .insert(ChannelId::new(1), backup(1, "pn1"));
        let by = |node: &'static str| move |ch: &BackupChannel| ch.primary == node;
        assert_eq!(channels.ids().await, vec![ChannelId::new(1), ChannelId::new(2)]);

        // A wrong guess leaves the channel to its owner.
        assert!(channels
            .take_backup(ChannelId::new(1), false, by("pn2"))
            .await
            .is_none());
        let (ch, plan) = channels.take_backup(ChannelId::new(1), false, by("pn1")).await.unwrap();
        assert_eq!((ch.channel_id, plan.is_none()), (ChannelId::new(1), true));
        assert!(channels
            .take_backup(ChannelId::new(1), false, by("pn1"))
            .await
            .is_none());

        // A kept channel is taken only as a resume, once the station resumed it.
        assert!(channels
            .take_backup(ChannelId::new(2), false, by("pn1"))
            .await
            .is_none());
        assert!(channels.take_backup(ChannelId::new(2), true, by("pn1")).await.is_none());
        assert_eq!(channels.ids().await, vec![ChannelId::new(2)]);
        let plan = resume::plan(&[], &[], |_| true).unwrap();
        channels.recovered.lock().await.get_mut(&ChannelId::new(2)).unwrap().1 = Some(plan);
        assert!(channels
            .take_backup(ChannelId::new(2), false, by("pn1"))
            .await
            .is_none());
        assert!(channels.take_backup(ChannelId::new(2), true, by("pn2")).await.is_none());
        let (ch, plan) = channels.take_backup(ChannelId::new(2), true, by("pn1")).await.unwrap();
        assert_eq!((ch.channel_id, plan.is_some()), (ChannelId::new(2), true));
        assert!(channels.ids().await.is_empty());
    }

    #[tokio::test]
    async fn running_and_merging_channels_are_held_too() {
        let channels = Channels::new(Vec::new());
        let guard = channels.running.start(ChannelId::new(5));
        assert_eq!(channels.ids().await, vec![ChannelId::new(5)]);
        drop(guard);
        assert!(channels.ids().await.is_empty());
    }
}
