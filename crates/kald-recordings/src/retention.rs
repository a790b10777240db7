//! Retention decisions: what the sweeper deletes now, and what it must keep although its time
//! has come. Pure functions of the clock, the policy and the catalogue — sans-IO.
//!
//! The store lists catalogue items ([`CatalogueItem`]: recordings, messages, call records with
//! a CPR number, tombstones) with their active holds and journal state; [`sweep`] returns one
//! [`Decision`] for each item whose deadline has passed, and nothing for the others; `kald`
//! carries the decisions out (delete the file and the personal metadata, write the tombstone,
//! raise the alert). Because a decision depends only on its inputs, a sweep is idempotent: run
//! again after a crash halfway, it decides the same for what is left, and an item already
//! deleted is simply no longer listed.
//!
//! # The rules
//!
//! - An item's deadline is its start (`ended`: the end of the call; for a tombstone, when it
//!   was written) plus the policy's period for its kind, in calendar months and days in the
//!   time zone of `now` (Europe/Copenhagen): see [`RetentionPeriod::deadline`] for the month
//!   ends and DST. The item is due when `now` ≥ its deadline.
//! - An item with an active hold is never deleted: [`Decision::Keep`] with
//!   [`KeepReason::Held`]. When the last hold is lifted it goes at the next sweep.
//! - A recording, message or call record linked to a case but not yet acknowledged by the case
//!   system ([`JournalState::LinkedNotExported`]) holds itself: [`KeepReason::AwaitingJournal`],
//!   which the caller shows as an alert naming it (issue 9). Once exported the case system has
//!   its own copy and kald's copy is deleted normally. A call record shares its call's link, so
//!   the CPR number the journal manifest needs outlives the deadline with the recording.
//! - A deleted recording or message leaves a tombstone (`tombstone: true`); a call record's
//!   personal data does not (the call's recording, if any, has its own). Tombstones are purged
//!   ([`Decision::PurgeTombstone`]) after their own period, unless held (an access request
//!   holds what it finds, tombstones included).

use jiff::{Timestamp, Zoned};

use crate::policy::{Policy, RetentionPeriod};

/// A catalogue row's id, as the store numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub i64);

/// What kind of personal data a catalogue item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ItemKind {
    /// The audio of a consenting call.
    Recording,
    /// A message a caller left.
    Message,
    /// The personal data (CPR number, caller's number) of a call record.
    CallRecord,
    /// What is left of a deleted recording or message.
    Tombstone,
}

/// Where an item stands with the case journal (issue 9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JournalState {
    /// Not linked to a case.
    #[default]
    None,
    /// Linked to a case, not yet acknowledged by the case system: not deleted.
    LinkedNotExported,
    /// Exported and acknowledged: the case system has it.
    Exported,
}

/// One row of the catalogue, as the sweeper needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatalogueItem {
    /// The row's id.
    pub id: ItemId,
    /// What it is.
    pub kind: ItemKind,
    /// When its retention starts: the end of the call, or when the tombstone was written.
    pub ended: Timestamp,
    /// Active holds on it (from records officers and access requests).
    pub holds: u32,
    /// Its journal state (ignored for tombstones).
    pub journal: JournalState,
}

impl CatalogueItem {
    /// An item with no holds and no journal link.
    pub fn new(id: ItemId, kind: ItemKind, ended: Timestamp) -> Self {
        Self {
            id,
            kind,
            ended,
            holds: 0,
            journal: JournalState::None,
        }
    }

    /// The same item with `holds` active holds.
    pub fn with_holds(self, holds: u32) -> Self {
        Self { holds, ..self }
    }

    /// The same item with this journal state.
    pub fn with_journal(self, journal: JournalState) -> Self {
        Self { journal, ..self }
    }
}

/// Why an item is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteReason {
    /// Its retention period ended at `deadline`.
    RetentionExpired {
        /// When it became due.
        deadline: Timestamp,
    },
}

impl DeleteReason {
    /// The reason in words, for the tombstone and the audit log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::RetentionExpired { .. } => "retention period ended",
        }
    }
}

/// Why a due item is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepReason {
    /// It has active holds.
    Held {
        /// How many.
        holds: u32,
    },
    /// It is linked to a case and not yet exported: alert until it is.
    AwaitingJournal,
    /// Both: held, and linked but not exported.
    HeldAndAwaitingJournal {
        /// How many holds.
        holds: u32,
    },
}

impl KeepReason {
    /// Whether the item waits for journalising (and so belongs in the alert).
    pub fn awaiting_journal(&self) -> bool {
        matches!(
            self,
            Self::AwaitingJournal | Self::HeldAndAwaitingJournal { .. }
        )
    }
}

/// What the sweeper should do with one due item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Delete the item (the file and its personal metadata); write a tombstone if `tombstone`.
    Delete {
        /// The item.
        id: ItemId,
        /// Its kind.
        kind: ItemKind,
        /// Why.
        reason: DeleteReason,
        /// Whether to leave a tombstone (recordings and messages).
        tombstone: bool,
    },
    /// Keep the item although its deadline has passed.
    Keep {
        /// The item.
        id: ItemId,
        /// Its kind.
        kind: ItemKind,
        /// When it became due.
        deadline: Timestamp,
        /// Why it stays.
        reason: KeepReason,
    },
    /// Delete the tombstone: its own period is over.
    PurgeTombstone {
        /// The tombstone.
        id: ItemId,
        /// When it became due.
        deadline: Timestamp,
    },
}

impl Decision {
    /// The item the decision is about.
    pub fn id(&self) -> ItemId {
        match *self {
            Self::Delete { id, .. } | Self::Keep { id, .. } | Self::PurgeTombstone { id, .. } => id,
        }
    }
}

/// The policy's retention period for `kind`.
pub fn period(policy: &Policy, kind: ItemKind) -> RetentionPeriod {
    let r = &policy.retention;
    match kind {
        ItemKind::Recording => r.recordings,
        ItemKind::Message => r.messages,
        ItemKind::CallRecord => r.call_records_with_cpr,
        ItemKind::Tombstone => r.tombstones,
    }
}

/// When `item` is due, in the time zone of `now`; `None` if beyond the year 9999 (never).
pub fn deadline(now: &Zoned, policy: &Policy, item: &CatalogueItem) -> Option<Timestamp> {
    period(policy, item.kind).deadline(item.ended, now.time_zone())
}

/// The decision for one item at `now`, or `None` while it is not yet due.
pub fn decide(now: &Zoned, policy: &Policy, item: &CatalogueItem) -> Option<Decision> {
    let deadline = deadline(now, policy, item)?;
    if now.timestamp() < deadline {
        return None;
    }
    let awaiting_journal =
        item.kind != ItemKind::Tombstone && item.journal == JournalState::LinkedNotExported;
    let reason = match (item.holds, awaiting_journal) {
        (0, false) => None,
        (0, true) => Some(KeepReason::AwaitingJournal),
        (holds, false) => Some(KeepReason::Held { holds }),
        (holds, true) => Some(KeepReason::HeldAndAwaitingJournal { holds }),
    };
    let (id, kind) = (item.id, item.kind);
    Some(match (reason, kind) {
        (Some(reason), _) => Decision::Keep {
            id,
            kind,
            deadline,
            reason,
        },
        (None, ItemKind::Tombstone) => Decision::PurgeTombstone { id, deadline },
        (None, _) => Decision::Delete {
            id,
            kind,
            reason: DeleteReason::RetentionExpired { deadline },
            tombstone: matches!(kind, ItemKind::Recording | ItemKind::Message),
        },
    })
}

/// The decisions of one sweep at `now` (a time in Europe/Copenhagen), in the order of
/// `items`: one for every due item, none for the others.
pub fn sweep<'a>(
    now: &Zoned,
    policy: &Policy,
    items: impl IntoIterator<Item = &'a CatalogueItem>,
) -> Vec<Decision> {
    items
        .into_iter()
        .filter_map(|item| decide(now, policy, item))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jiff::civil::date;
    use jiff::tz::TimeZone;
    use jiff::ToSpan;

    use super::*;

    fn cph() -> TimeZone {
        TimeZone::get("Europe/Copenhagen").unwrap()
    }

    /// A pinned "now": 2025-06-16 10:00 in Copenhagen.
    fn now() -> Zoned {
        date(2025, 6, 16).at(10, 0, 0, 0).to_zoned(cph()).unwrap()
    }

    fn at(y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
        date(y, m, d)
            .at(h, min, 0, 0)
            .to_zoned(cph())
            .unwrap()
            .timestamp()
    }

    fn recording(id: i64, ended: Timestamp) -> CatalogueItem {
        CatalogueItem::new(ItemId(id), ItemKind::Recording, ended)
    }

    #[test]
    fn three_months_ago_is_deleted_a_day_younger_kept() {
        let policy = Policy::default();
        let now = now();
        let three_months_ago = now.checked_sub(3.months()).unwrap().timestamp();
        let a_day_younger = now
            .checked_sub(3.months())
            .unwrap()
            .checked_add(1.day())
            .unwrap()
            .timestamp();
        let a_second_younger = Timestamp::from_second(three_months_ago.as_second() + 1).unwrap();
        let items = [
            recording(1, three_months_ago),
            recording(2, a_day_younger),
            recording(3, a_second_younger),
            recording(4, at(2024, 1, 1, 12, 0)),
        ];
        let decisions = sweep(&now, &policy, &items);
        assert_eq!(
            decisions,
            [
                Decision::Delete {
                    id: ItemId(1),
                    kind: ItemKind::Recording,
                    reason: DeleteReason::RetentionExpired {
                        deadline: now.timestamp()
                    },
                    tombstone: true,
                },
                Decision::Delete {
                    id: ItemId(4),
                    kind: ItemKind::Recording,
                    reason: DeleteReason::RetentionExpired {
                        deadline: at(2024, 4, 1, 12, 0)
                    },
                    tombstone: true,
                },
            ]
        );
        // The same sweep again decides the same (pure), and without the deleted items nothing.
        assert_eq!(sweep(&now, &policy, &items), decisions);
        assert_eq!(sweep(&now, &policy, &items[1..3]), []);
    }

    #[test]
    fn held_items_are_kept_until_the_hold_is_lifted() {
        let policy = Policy::default();
        let now = now();
        let old = at(2025, 1, 2, 9, 0);
        let held = recording(1, old).with_holds(2);
        assert_eq!(
            sweep(&now, &policy, [&held]),
            [Decision::Keep {
                id: ItemId(1),
                kind: ItemKind::Recording,
                deadline: at(2025, 4, 2, 9, 0),
                reason: KeepReason::Held { holds: 2 },
            }]
        );
        // Lifted: gone at the next sweep.
        let lifted = held.with_holds(0);
        assert!(matches!(
            sweep(&now, &policy, [&lifted])[..],
            [Decision::Delete { id: ItemId(1), .. }]
        ));
        // Not yet due: no decision, held or not.
        let young = recording(2, at(2025, 6, 1, 9, 0)).with_holds(1);
        assert_eq!(sweep(&now, &policy, [&young]), []);
    }

    #[test]
    fn linked_recordings_wait_for_the_journal() {
        let policy = Policy::default();
        let now = now();
        let old = at(2025, 1, 2, 9, 0);
        let linked = recording(1, old).with_journal(JournalState::LinkedNotExported);
        let decision = sweep(&now, &policy, [&linked]);
        assert!(matches!(
            decision[..],
            [Decision::Keep {
                reason: KeepReason::AwaitingJournal,
                ..
            }]
        ));
        let both = linked.with_holds(1);
        match sweep(&now, &policy, [&both])[..] {
            [Decision::Keep { reason, .. }] => {
                assert_eq!(reason, KeepReason::HeldAndAwaitingJournal { holds: 1 });
                assert!(reason.awaiting_journal());
            }
            ref other => panic!("{other:?}"),
        }
        // The call record keeps the CPR number for the journal manifest too.
        let record = CatalogueItem::new(ItemId(2), ItemKind::CallRecord, old)
            .with_journal(JournalState::LinkedNotExported);
        assert!(matches!(
            sweep(&now, &policy, [&record])[..],
            [Decision::Keep { .. }]
        ));
        // Exported: the case system has it; kald's copy goes.
        let exported = linked.with_journal(JournalState::Exported);
        assert!(matches!(
            sweep(&now, &policy, [&exported])[..],
            [Decision::Delete {
                tombstone: true,
                ..
            }]
        ));
    }

    #[test]
    fn kinds_have_their_own_periods_and_tombstones() {
        let policy = Policy::default();
        let now = now();
        let old = at(2025, 3, 1, 8, 0);
        let message = CatalogueItem::new(ItemId(1), ItemKind::Message, old);
        let record = CatalogueItem::new(ItemId(2), ItemKind::CallRecord, old);
        let decisions = sweep(&now, &policy, [&message, &record]);
        assert!(matches!(
            decisions[..],
            [
                Decision::Delete {
                    id: ItemId(1),
                    kind: ItemKind::Message,
                    tombstone: true,
                    ..
                },
                Decision::Delete {
                    id: ItemId(2),
                    kind: ItemKind::CallRecord,
                    tombstone: false,
                    ..
                }
            ]
        ));
        // Tombstones: kept a year from when they were written, then purged (unless held).
        let written = at(2024, 6, 16, 10, 0);
        let tomb = CatalogueItem::new(ItemId(3), ItemKind::Tombstone, written)
            .with_journal(JournalState::LinkedNotExported); // ignored for tombstones
        assert_eq!(
            sweep(&now, &policy, [&tomb]),
            [Decision::PurgeTombstone {
                id: ItemId(3),
                deadline: now.timestamp()
            }]
        );
        let younger = CatalogueItem::new(ItemId(4), ItemKind::Tombstone, at(2024, 6, 17, 10, 0));
        assert_eq!(sweep(&now, &policy, [&younger]), []);
        let held = tomb.with_holds(1);
        assert!(matches!(
            sweep(&now, &policy, [&held])[..],
            [Decision::Keep {
                kind: ItemKind::Tombstone,
                reason: KeepReason::Held { holds: 1 },
                ..
            }]
        ));
    }

    #[test]
    fn deadlines_use_calendar_months_in_copenhagen() {
        let tz = cph();
        let months = |m| RetentionPeriod::new(m, 0).unwrap();
        let days = |d| RetentionPeriod::new(0, d).unwrap();
        // Month ends: the day is clamped to the target month's last day.
        assert_eq!(
            months(1).deadline(at(2025, 1, 31, 15, 0), &tz),
            Some(at(2025, 2, 28, 15, 0))
        );
        assert_eq!(
            months(1).deadline(at(2024, 1, 31, 15, 0), &tz),
            Some(at(2024, 2, 29, 15, 0))
        );
        assert_eq!(
            months(3).deadline(at(2024, 11, 30, 9, 0), &tz),
            Some(at(2025, 2, 28, 9, 0))
        );
        assert_eq!(
            months(3).deadline(at(2025, 5, 31, 9, 0), &tz),
            Some(at(2025, 8, 31, 9, 0))
        );
        // Across DST the local time is kept: winter (+01) to summer (+02) and back, so the
        // deadline is 3 months of dates, one hour more or less than a fixed number of hours.
        let winter = at(2025, 1, 15, 10, 0);
        let summer = months(3).deadline(winter, &tz).unwrap();
        assert_eq!(summer, at(2025, 4, 15, 10, 0));
        assert_eq!(
            summer.as_second() - winter.as_second(),
            (31 + 28 + 31) * 86_400 - 3600
        );
        let back = months(3).deadline(at(2025, 8, 15, 10, 0), &tz).unwrap();
        assert_eq!(back, at(2025, 11, 15, 10, 0));
        // 90 days across the March change is 90 dates, not 90 × 24 h.
        assert_eq!(
            days(90).deadline(at(2025, 3, 1, 12, 0), &tz),
            Some(at(2025, 5, 30, 12, 0))
        );
        // A call that ended at 02:30 lands in the skipped hour (30 March 2025, 02:00 → 03:00):
        // the deadline is 03:30 summer time.
        let gap_deadline = months(3).deadline(at(2024, 12, 30, 2, 30), &tz).unwrap();
        assert_eq!(gap_deadline.to_string(), "2025-03-30T01:30:00Z");
        // In the repeated hour (26 October 2025, 02:00–03:00 twice): the first, summer time.
        let fold_deadline = months(3).deadline(at(2025, 7, 26, 2, 30), &tz).unwrap();
        assert_eq!(fold_deadline.to_string(), "2025-10-26T00:30:00Z");
        // And a call that ended in the second 02:30 (winter time) of that night.
        let second = Timestamp::from_second(
            "2025-10-26T01:30:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second(),
        )
        .unwrap();
        assert_eq!(
            months(1).deadline(second, &tz).unwrap().to_string(),
            "2025-11-26T01:30:00Z"
        );
        // The same as jiff's Zoned arithmetic.
        for ts in [
            winter,
            at(2024, 12, 30, 2, 30),
            at(2025, 7, 26, 2, 30),
            second,
        ] {
            let zoned = ts.to_zoned(tz.clone());
            assert_eq!(
                months(3).deadline(ts, &tz),
                Some(zoned.checked_add(3.months()).unwrap().timestamp())
            );
        }
        // Beyond the calendar: never due, never a panic.
        assert_eq!(months(1200).deadline(Timestamp::MAX, &tz), None);
    }

    #[test]
    fn the_sweep_runs_at_a_dst_change() {
        // A sweep at 02:30 on the night the clocks go back, run twice (once per 02:30).
        let policy = Policy::default();
        let first = "2025-10-26T00:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .to_zoned(cph());
        let second = "2025-10-26T01:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .to_zoned(cph());
        let ended = at(2025, 7, 26, 2, 30); // due at the first 02:30
        let item = recording(1, ended);
        assert_eq!(sweep(&first, &policy, [&item]).len(), 1);
        assert_eq!(sweep(&second, &policy, [&item]).len(), 1);
        let an_hour_before = "2025-10-25T23:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .to_zoned(cph());
        assert_eq!(sweep(&an_hour_before, &policy, [&item]), []);
    }

    #[test]
    fn a_large_sweep_decides_every_item() {
        // 100,000 items over the last six months; the time is measured by benches/sweep.rs.
        let policy = Policy::default();
        let now = now();
        let start = at(2024, 12, 16, 10, 0).as_second();
        let items: Vec<CatalogueItem> = (0..100_000)
            .map(|i| {
                let ended = Timestamp::from_second(start + i * 157).unwrap();
                recording(i, ended).with_holds(u32::from(i % 50 == 0))
            })
            .collect();
        let decisions = sweep(&now, &policy, &items);
        let cutoff = at(2025, 3, 16, 10, 0);
        let due = items.iter().filter(|i| i.ended <= cutoff).count();
        assert_eq!(decisions.len(), due);
        let kept = decisions
            .iter()
            .filter(|d| matches!(d, Decision::Keep { .. }))
            .count();
        assert_eq!(kept, items[..due].iter().filter(|i| i.holds > 0).count());
        assert!(decisions.windows(2).all(|w| w[0].id() < w[1].id()));
    }
}
