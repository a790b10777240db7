//! The key figures of issue 7 (`kald_acd::stats`): a golden day counted by hand, the CSV, and
//! the edge cases.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::civil::{date, Date};
use jiff::Timestamp;
use kald_acd::stats::{
    key_figures, to_csv, Figures, KeyFigures, LogEvent, StatsParams, CSV_HEADER,
};

/// Parses a log table: `at call event queue agent key=value…`, `-` for none, `#` comments.
fn log(table: &str) -> Vec<LogEvent> {
    table
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split_whitespace();
            let mut next = || f.next().unwrap().to_owned();
            let at: Timestamp = next().parse().unwrap();
            let (call, event, queue, agent) = (next(), next(), next(), next());
            let opt = |s: String| (s != "-").then_some(s);
            let data = l
                .split_whitespace()
                .skip(5)
                .filter(|kv| *kv != "-")
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            LogEvent {
                at,
                call: if call == "-" { String::new() } else { call },
                queue: opt(queue),
                agent: opt(agent),
                event,
                data,
            }
        })
        .collect()
}

/// Wednesday 11 June 2025 (CEST: local = UTC + 2), grouped by call for reading; times in UTC.
/// Queues: syg (sygedagpenge), dag (dagpenge), bs (borgerservice).
const GOLDEN: &str = "
# at (UTC)             call event        queue agent data
# c24: 00:30 local on the 11th, though 22:30 UTC on the 10th. Answered after 10 s.
2025-06-10T22:30:00Z   c24  ENTER        bs    -     topic=pas priority=0
2025-06-10T22:30:10Z   c24  ANSWER       bs    anna  wait_ms=10000
2025-06-10T22:33:00Z   c24  END          -     anna  talk_ms=170000
# c01: answered after 20 s.
2025-06-11T06:00:00Z   c01  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T06:00:01Z   c01  RING         -     anna  -
2025-06-11T06:00:20Z   c01  ANSWER       syg   anna  wait_ms=20000
2025-06-11T06:04:20Z   c01  END          -     anna  talk_ms=240000
# c02: short abandon (3 s).
2025-06-11T06:05:00Z   c02  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T06:05:03Z   c02  ABANDON      syg   -     wait_ms=3000 position=1
# c03: answered after 40 s (beyond the service level).
2025-06-11T06:10:00Z   c03  ENTER        syg   -     topic=sygedagpenge priority=0
2025-06-11T06:10:40Z   c03  ANSWER       syg   bo    wait_ms=40000
2025-06-11T06:15:00Z   c03  END          -     bo    talk_ms=260000
# c04: answered after 10 s, transferred to a colleague.
2025-06-11T06:20:00Z   c04  ENTER        dag   -     topic=dagpenge priority=0
2025-06-11T06:20:10Z   c04  ANSWER       dag   carl  wait_ms=10000
2025-06-11T06:22:00Z   c04  TRANSFER     -     carl  to=dorte
2025-06-11T06:22:00Z   c04  END          -     carl  talk_ms=110000
# c05: abandoned after 90 s.
2025-06-11T06:30:00Z   c05  ENTER        dag   -     topic=dagpenge priority=0
2025-06-11T06:31:30Z   c05  ABANDON      dag   -     wait_ms=90000 position=2
# c06: answered after 5 s.
2025-06-11T06:45:00Z   c06  ENTER        bs    -     topic=pas priority=0
2025-06-11T06:45:05Z   c06  ANSWER       bs    erik  wait_ms=5000
2025-06-11T06:48:00Z   c06  END          -     erik  talk_ms=175000
# c07: the maximum wait (180 s) took it back: unanswered, the longest wait of the day.
2025-06-11T07:00:00Z   c07  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T07:03:00Z   c07  MAXWAIT      syg   -     wait_ms=180000
# c08: answered after exactly 25 s (within the service level).
2025-06-11T07:05:00Z   c08  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T07:05:25Z   c08  ANSWER       syg   anna  wait_ms=25000
2025-06-11T07:09:00Z   c08  END          -     anna  talk_ms=215000
# c09: answered after 15 s in dag, transferred to the syg queue, answered there after 30 s.
2025-06-11T07:10:00Z   c09  ENTER        dag   -     topic=dagpenge priority=0
2025-06-11T07:10:15Z   c09  ANSWER       dag   carl  wait_ms=15000
2025-06-11T07:12:00Z   c09  TRANSFER     -     carl  to=queue:syg
2025-06-11T07:12:00Z   c09  END          -     carl  talk_ms=105000
2025-06-11T07:12:00Z   c09  ENTER        syg   -     topic=dagpenge priority=0
2025-06-11T07:12:30Z   c09  ANSWER       syg   bo    wait_ms=30000
2025-06-11T07:16:00Z   c09  END          -     bo    talk_ms=210000
# c10: abandoned after exactly 5 s: a short abandon.
2025-06-11T07:15:00Z   c10  ENTER        bs    -     topic=pas priority=0
2025-06-11T07:15:05Z   c10  ABANDON      bs    -     wait_ms=5000 position=1
# c11: abandoned after 6 s: not short.
2025-06-11T07:20:00Z   c11  ENTER        bs    -     topic=pas priority=0
2025-06-11T07:20:06Z   c11  ABANDON      bs    -     wait_ms=6000 position=1
# c12: answered after 12 s, a transfer to a colleague failed, requeued at the head, answered.
2025-06-11T07:30:00Z   c12  ENTER        syg   -     topic=sygedagpenge priority=0
2025-06-11T07:30:12Z   c12  ANSWER       syg   anna  wait_ms=12000
2025-06-11T07:32:00Z   c12  TRANSFER     -     anna  to=carl
2025-06-11T07:32:00Z   c12  END          -     anna  talk_ms=108000
2025-06-11T07:32:20Z   c12  ENTER        syg   -     topic=sygedagpenge priority=0
2025-06-11T07:32:28Z   c12  ANSWER       syg   bo    wait_ms=8000
2025-06-11T07:35:00Z   c12  END          -     bo    talk_ms=152000
# c13: answered after 60 s.
2025-06-11T08:00:00Z   c13  ENTER        dag   -     topic=dagpenge priority=0
2025-06-11T08:01:00Z   c13  ANSWER       dag   dorte wait_ms=60000
2025-06-11T08:05:00Z   c13  END          -     dorte talk_ms=240000
# c14: abandoned after 120 s.
2025-06-11T08:02:00Z   c14  ENTER        dag   -     topic=dagpenge priority=0
2025-06-11T08:04:00Z   c14  ABANDON      dag   -     wait_ms=120000 position=1
# c15: anna did not answer, bo answered after 24 s.
2025-06-11T08:10:00Z   c15  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T08:10:01Z   c15  RING         -     anna  -
2025-06-11T08:10:16Z   c15  RINGNOANSWER -     anna  rang_ms=15000
2025-06-11T08:10:17Z   c15  RING         -     bo    -
2025-06-11T08:10:24Z   c15  ANSWER       syg   bo    wait_ms=24000
2025-06-11T08:14:00Z   c15  END          -     bo    talk_ms=216000
# c16: answered after 2 s.
2025-06-11T08:20:00Z   c16  ENTER        bs    -     topic=pas priority=0
2025-06-11T08:20:02Z   c16  ANSWER       bs    erik  wait_ms=2000
2025-06-11T08:22:00Z   c16  END          -     erik  talk_ms=118000
# c17: short abandon (1 s).
2025-06-11T08:40:00Z   c17  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T08:40:01Z   c17  ABANDON      syg   -     wait_ms=1000 position=1
# c18: answered after 33 s.
2025-06-11T09:05:00Z   c18  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T09:05:33Z   c18  ANSWER       syg   anna  wait_ms=33000
2025-06-11T09:10:00Z   c18  END          -     anna  talk_ms=267000
# c19: answered after 20 s, transferred to the bs queue, answered there after 10 s.
2025-06-11T09:30:00Z   c19  ENTER        dag   -     topic=dagpenge priority=0
2025-06-11T09:30:20Z   c19  ANSWER       dag   carl  wait_ms=20000
2025-06-11T09:32:00Z   c19  TRANSFER     -     carl  to=queue:bs
2025-06-11T09:32:00Z   c19  END          -     carl  talk_ms=100000
2025-06-11T09:32:00Z   c19  ENTER        bs    -     topic=dagpenge priority=0
2025-06-11T09:32:10Z   c19  ANSWER       bs    erik  wait_ms=10000
2025-06-11T09:36:00Z   c19  END          -     erik  talk_ms=230000
# c20: answered after 45 s.
2025-06-11T10:00:00Z   c20  ENTER        bs    -     topic=pas priority=0
2025-06-11T10:00:45Z   c20  ANSWER       bs    erik  wait_ms=45000
2025-06-11T10:03:00Z   c20  END          -     erik  talk_ms=135000
# c21: abandoned after 70 s.
2025-06-11T10:15:00Z   c21  ENTER        syg   -     topic=sygedagpenge priority=0
2025-06-11T10:16:10Z   c21  ABANDON      syg   -     wait_ms=70000 position=3
# c22: answered after 8 s.
2025-06-11T11:00:00Z   c22  ENTER        dag   -     topic=dagpenge priority=0
2025-06-11T11:00:08Z   c22  ANSWER       dag   dorte wait_ms=8000
2025-06-11T11:04:00Z   c22  END          -     dorte talk_ms=232000
# c23: answered after 18 s.
2025-06-11T11:30:00Z   c23  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T11:30:18Z   c23  ANSWER       syg   bo    wait_ms=18000
2025-06-11T11:33:00Z   c23  END          -     bo    talk_ms=162000
# c26: 23:50 local on the 11th, answered after 40 s, ends after local midnight.
2025-06-11T21:50:00Z   c26  ENTER        syg   -     topic=sygedagpenge priority=0
2025-06-11T21:50:40Z   c26  ANSWER       syg   anna  wait_ms=40000
2025-06-11T22:05:00Z   c26  END          -     anna  talk_ms=860000
# c25: 00:10 local on the 12th, though 22:10 UTC on the 11th. Answered after 30 s.
2025-06-11T22:10:00Z   c25  ENTER        syg   -     topic=sygemelding priority=0
2025-06-11T22:10:30Z   c25  ANSWER       syg   anna  wait_ms=30000
2025-06-11T22:14:00Z   c25  END          -     anna  talk_ms=210000
# Not about calls: ignored.
2025-06-11T05:55:00Z   -    AGENTSTATE   -     anna  state=Available reason=
2025-06-11T10:30:00Z   -    AGENTSTATE   -     bo    state=Paused reason=frokost
2025-06-11T11:05:00Z   -    PAUSELIMIT   -     bo    -
2025-06-11T08:11:00Z   c15  LISTENSTART  -     bo    listener=tina
2025-06-11T08:12:00Z   c15  LISTENEND    -     bo    listener=tina
2025-06-11T08:13:00Z   c15  SOMETHINGNEW -     bo    wait_ms=999000
";

// The hand count. Per call (first ENTER): queue, topic, local hour and day, outcome, wait (s),
// within 25 s, transferred (T), settled on first contact (S).
//
// call queue topic        hour day  outcome    wait  ≤25s  T  S
// c24  bs    pas           0   11th answered    10    y       S
// c01  syg   sygemelding   8   11th answered    20    y       S
// c02  syg   sygemelding   8   11th short ab.    3    -
// c03  syg   sygedagpenge  8   11th answered    40    n       S
// c04  dag   dagpenge      8   11th answered    10    y    T
// c05  dag   dagpenge      8   11th abandoned   90
// c06  bs    pas           8   11th answered     5    y       S
// c07  syg   sygemelding   9   11th max wait   180
// c08  syg   sygemelding   9   11th answered    25    y       S
// c09  dag   dagpenge      9   11th answered    15    y    T      (2nd answer in syg ignored)
// c10  bs    pas           9   11th short ab.    5    -
// c11  bs    pas           9   11th abandoned    6
// c12  syg   sygedagpenge  9   11th answered    12    y    T      (requeued, 2nd answer ignored)
// c13  dag   dagpenge     10   11th answered    60    n       S
// c14  dag   dagpenge     10   11th abandoned  120
// c15  syg   sygemelding  10   11th answered    24    y       S
// c16  bs    pas          10   11th answered     2    y       S
// c17  syg   sygemelding  10   11th short ab.    1    -
// c18  syg   sygemelding  11   11th answered    33    n       S
// c19  dag   dagpenge     11   11th answered    20    y    T
// c20  bs    pas          12   11th answered    45    n       S
// c21  syg   sygedagpenge 12   11th abandoned   70
// c22  dag   dagpenge     13   11th answered     8    y       S
// c23  syg   sygemelding  13   11th answered    18    y       S
// c26  syg   sygedagpenge 23   11th answered    40    n       S
// c25  syg   sygemelding   0   12th answered    30    n       S
//
// Totals: offered 26, short 3, abandoned 4, max wait 1, answered 18, within 25 s 12,
// transferred 4, settled 14. Base (offered − short) 23: answer rate 18/23, service level
// 12/23, straksafklaring 14/18. Waits (23 calls, short abandons out): answered 417 s +
// abandoned 90+6+120+70 = 286 s + max wait 180 s = 883 s; average 883/23 s, longest 180 s.
//
// dimension    key           off sh ab mw ans ≤25 T  S  wait sum/n  longest
// queue        bs              6  1  1  0   4   3 0  4   68/5        45
// queue        dag             7  0  2  0   5   4 3  2  323/7       120
// queue        syg            13  2  1  1   9   5 1  8  492/11      180
// topic        dagpenge        7  0  2  0   5   4 3  2  323/7       120
// topic        pas             6  1  1  0   4   3 0  4   68/5        45
// topic        sygedagpenge    4  0  1  0   3   1 1  2  162/4        70
// topic        sygemelding     9  2  0  1   6   4 0  6  330/7       180
// hour          0              2  0  0  0   2   1 0  2   40/2        30
// hour          8              6  1  1  0   4   3 1  3  165/5        90
// hour          9              6  1  1  1   3   3 2  1  238/5       180
// hour         10              5  1  1  0   3   2 0  3  206/4       120
// hour         11              2  0  0  0   2   1 1  1   53/2        33
// hour         12              2  0  1  0   1   0 0  1  115/2        70
// hour         13              2  0  0  0   2   2 0  2   26/2        18
// hour         23              1  0  0  0   1   0 0  1   40/1        40
// day          2025-06-11     25  3  4  1  17  12 4 13  853/22      180
// day          2025-06-12      1  0  0  0   1   0 0  1   30/1        30

/// Expected figures from the hand count: the counts, the wait sum (s) and count, the longest.
#[allow(clippy::cast_precision_loss)]
fn fig(counts: [u64; 8], wait_sum: u64, waits: u32, longest: u64) -> Figures {
    let [offered, short_abandons, abandoned, max_wait_reached, answered, within, transferred, settled] =
        counts;
    let base = offered - short_abandons;
    let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
    Figures {
        offered,
        short_abandons,
        abandoned,
        max_wait_reached,
        answered,
        answered_within_service_level: within,
        transferred,
        settled_first_contact: settled,
        answer_rate: ratio(answered, base),
        service_level: ratio(within, base),
        settled_first_contact_rate: ratio(settled, answered),
        average_wait: (waits > 0).then(|| Duration::from_secs(wait_sum) / waits),
        longest_wait: (waits > 0).then(|| Duration::from_secs(longest)),
    }
}

fn golden_expected() -> KeyFigures {
    let s = |k: &str| k.to_owned();
    KeyFigures {
        total: fig([26, 3, 4, 1, 18, 12, 4, 14], 883, 23, 180),
        by_queue: BTreeMap::from([
            (s("bs"), fig([6, 1, 1, 0, 4, 3, 0, 4], 68, 5, 45)),
            (s("dag"), fig([7, 0, 2, 0, 5, 4, 3, 2], 323, 7, 120)),
            (s("syg"), fig([13, 2, 1, 1, 9, 5, 1, 8], 492, 11, 180)),
        ]),
        by_topic: BTreeMap::from([
            (s("dagpenge"), fig([7, 0, 2, 0, 5, 4, 3, 2], 323, 7, 120)),
            (s("pas"), fig([6, 1, 1, 0, 4, 3, 0, 4], 68, 5, 45)),
            (s("sygedagpenge"), fig([4, 0, 1, 0, 3, 1, 1, 2], 162, 4, 70)),
            (s("sygemelding"), fig([9, 2, 0, 1, 6, 4, 0, 6], 330, 7, 180)),
        ]),
        by_hour: BTreeMap::from([
            (0, fig([2, 0, 0, 0, 2, 1, 0, 2], 40, 2, 30)),
            (8, fig([6, 1, 1, 0, 4, 3, 1, 3], 165, 5, 90)),
            (9, fig([6, 1, 1, 1, 3, 3, 2, 1], 238, 5, 180)),
            (10, fig([5, 1, 1, 0, 3, 2, 0, 3], 206, 4, 120)),
            (11, fig([2, 0, 0, 0, 2, 1, 1, 1], 53, 2, 33)),
            (12, fig([2, 0, 1, 0, 1, 0, 0, 1], 115, 2, 70)),
            (13, fig([2, 0, 0, 0, 2, 2, 0, 2], 26, 2, 18)),
            (23, fig([1, 0, 0, 0, 1, 0, 0, 1], 40, 1, 40)),
        ]),
        by_day: BTreeMap::from([
            (
                date(2025, 6, 11),
                fig([25, 3, 4, 1, 17, 12, 4, 13], 853, 22, 180),
            ),
            (date(2025, 6, 12), fig([1, 0, 0, 0, 1, 0, 0, 1], 30, 1, 30)),
        ]),
    }
}

#[test]
fn golden_day() {
    let events = log(GOLDEN);
    let got = key_figures(&events, &StatsParams::default());
    let want = golden_expected();
    // Field by field first, for readable failures.
    assert_eq!(got.total, want.total);
    assert_eq!(got.by_queue, want.by_queue);
    assert_eq!(got.by_topic, want.by_topic);
    assert_eq!(got.by_hour, want.by_hour);
    assert_eq!(got.by_day, want.by_day);
    assert_eq!(got, want);

    // A few of the figures as a reader would check them.
    assert_eq!(got.total.answer_rate, Some(18.0 / 23.0));
    assert_eq!(got.total.service_level, Some(12.0 / 23.0));
    assert_eq!(got.total.settled_first_contact_rate, Some(14.0 / 18.0));
    assert_eq!(got.total.longest_wait, Some(Duration::from_secs(180)));
    assert_eq!(got.by_queue["bs"].settled_first_contact_rate, Some(1.0));
    assert_eq!(got.by_day[&date(2025, 6, 11)].answered, 17);
}

#[test]
fn golden_day_in_time_order_is_the_same() {
    // The table is grouped by call; the store gives rows in time order, calls interleaved.
    let mut events = log(GOLDEN);
    events.sort_by_key(|e| e.at);
    assert_eq!(
        key_figures(&events, &StatsParams::default()),
        golden_expected()
    );
    // And reversed: key_figures takes the events by time whatever the slice's order.
    events.reverse();
    // Equal timestamps keep the slice's order, here reversed; the golden log's ties (TRANSFER,
    // END and ENTER of one call at one instant) do not change any figure.
    assert_eq!(
        key_figures(&events, &StatsParams::default()),
        golden_expected()
    );
}

#[test]
fn time_zone_decides_hour_and_day() {
    let events = log(GOLDEN);
    let utc = StatsParams {
        time_zone: jiff::tz::TimeZone::UTC,
        ..StatsParams::default()
    };
    let got = key_figures(&events, &utc);
    // In UTC c24 is on the 10th at 22, c26 at 21 and c25 at 22 on the 11th.
    assert_eq!(
        got.by_day.keys().copied().collect::<Vec<Date>>(),
        [date(2025, 6, 10), date(2025, 6, 11)]
    );
    assert_eq!(got.by_day[&date(2025, 6, 11)].offered, 25);
    assert_eq!(
        got.by_hour.keys().copied().collect::<Vec<i8>>(),
        [6, 7, 8, 9, 10, 11, 21, 22]
    );
    assert_eq!(got.by_hour[&22].offered, 2);
    // Winter time: 10:00 UTC on 15 January is 11 local.
    let winter = log("2025-01-15T10:00:00Z c1 ENTER q - topic=t");
    let got = key_figures(&winter, &StatsParams::default());
    assert_eq!(got.by_hour.keys().copied().collect::<Vec<i8>>(), [11]);
}

#[test]
fn defaults() {
    let p = StatsParams::default();
    assert_eq!(p.short_abandon, Duration::from_secs(5));
    assert_eq!(p.service_level, Duration::from_secs(25));
    assert_eq!(p.time_zone.iana_name(), Some("Europe/Copenhagen"));
}

#[test]
fn empty_log_has_no_rates() {
    let got = key_figures(&[], &StatsParams::default());
    assert_eq!(got, KeyFigures::default());
    assert_eq!(got.total.offered, 0);
    assert_eq!(got.total.answer_rate, None);
    assert_eq!(got.total.service_level, None);
    assert_eq!(got.total.settled_first_contact_rate, None);
    assert_eq!(got.total.average_wait, None);
    assert_eq!(got.total.longest_wait, None);
    assert_eq!(
        to_csv(&got),
        format!("{CSV_HEADER}\n{}", "total,,0,0,0,0,0,0,0,0,,,,,\n")
    );
}

#[test]
fn only_short_abandons_have_no_rates() {
    let got = key_figures(
        &log("
            2025-06-11T08:00:00Z c1 ENTER   q - topic=t
            2025-06-11T08:00:02Z c1 ABANDON q - wait_ms=2000 position=1
        "),
        &StatsParams::default(),
    );
    assert_eq!(got.total.offered, 1);
    assert_eq!(got.total.short_abandons, 1);
    assert_eq!(got.total.answer_rate, None);
    assert_eq!(got.total.service_level, None);
    assert_eq!(got.total.average_wait, None);
}

#[test]
fn unknown_and_unrelated_events_are_ignored() {
    let got = key_figures(
        &log("
            2025-06-11T08:00:00Z -  AGENTSTATE - anna state=Available reason=
            2025-06-11T08:00:01Z c0 ANSWER     q anna wait_ms=1000
            2025-06-11T08:00:02Z c0 TRANSFER   - anna to=bo
            2025-06-11T08:00:03Z c1 FROBNICATE q anna wait_ms=1000
            2025-06-11T08:00:04Z c1 ENTER      q -    topic=t
            2025-06-11T08:00:05Z c1 FROBNICATE q -    wait_ms=1
            2025-06-11T08:00:06Z c1 ABANDON    q -    wait_ms=60000 position=1
        "),
        &StatsParams::default(),
    );
    // c0 never entered a queue: not offered. c1 is one abandon.
    assert_eq!(got.total, fig([1, 0, 1, 0, 0, 0, 0, 0], 60, 1, 60));
}

#[test]
fn a_call_still_waiting_is_offered_and_unanswered() {
    let got = key_figures(
        &log("
            2025-06-11T08:00:00Z c1 ENTER  q -    topic=t
            2025-06-11T08:00:00Z c2 ENTER  q -    topic=t
            2025-06-11T08:00:10Z c2 ANSWER q anna wait_ms=10000
        "),
        &StatsParams::default(),
    );
    assert_eq!(got.total, fig([2, 0, 0, 0, 1, 1, 0, 1], 10, 1, 10));
    assert_eq!(got.total.answer_rate, Some(0.5));
}

#[test]
fn a_missing_wait_is_taken_from_the_latest_enter() {
    let got = key_figures(
        &log("
            2025-06-11T08:00:00Z c1 ENTER   q - topic=t
            2025-06-11T08:00:40Z c1 ANSWER  q anna -
            2025-06-11T08:01:00Z c2 ENTER   q - topic=t
            2025-06-11T08:01:30Z c2 MAXWAIT q - wait_ms=oops
        "),
        &StatsParams::default(),
    );
    assert_eq!(got.total, fig([2, 0, 0, 1, 1, 0, 0, 1], 70, 2, 40));
}

#[test]
fn max_wait_then_another_queue_takes_the_last_outcome() {
    // The flow sent the call to a second queue after the maximum wait; the caller left there
    // after 3 s. Its outcome is that last abandon: short (the first queue's 180 s is not added).
    // A call answered, transferred to a queue and abandoned there stays answered.
    let got = key_figures(
        &log("
            2025-06-11T08:00:00Z c1 ENTER    a - topic=t
            2025-06-11T08:03:00Z c1 MAXWAIT  a - wait_ms=180000
            2025-06-11T08:03:01Z c1 ENTER    b - topic=t
            2025-06-11T08:03:04Z c1 ABANDON  b - wait_ms=3000 position=1
            2025-06-11T09:00:00Z c2 ENTER    a - topic=t
            2025-06-11T09:00:30Z c2 ANSWER   a anna wait_ms=30000
            2025-06-11T09:02:00Z c2 TRANSFER - anna to=queue:b
            2025-06-11T09:02:00Z c2 ENTER    b - topic=t
            2025-06-11T09:03:00Z c2 ABANDON  b - wait_ms=60000 position=1
        "),
        &StatsParams::default(),
    );
    assert_eq!(got.total, fig([2, 1, 0, 0, 1, 0, 1, 0], 30, 1, 30));
    assert_eq!(got.by_queue.keys().collect::<Vec<_>>(), ["a"]);
}

#[test]
fn csv_of_a_small_log() {
    let got = key_figures(
        &log("
            2025-06-11T06:00:00Z c1 ENTER    sygedagpenge - topic=sygemelding
            2025-06-11T06:00:20Z c1 ANSWER   sygedagpenge anna wait_ms=20000
            2025-06-11T06:05:00Z c2 ENTER    sygedagpenge - topic=sygemelding
            2025-06-11T06:05:03Z c2 ABANDON  sygedagpenge - wait_ms=3000 position=1
            2025-06-11T07:10:00Z c3 ENTER    a,b - topic=x\"y
            2025-06-11T07:10:40Z c3 ANSWER   a,b bo wait_ms=40500
            2025-06-11T07:12:00Z c3 TRANSFER - bo to=carl
            2025-06-11T07:20:00Z c4 ENTER    a,b - topic=x\"y
            2025-06-11T07:21:10Z c4 MAXWAIT  a,b - wait_ms=70000
        "),
        &StatsParams::default(),
    );
    let want = "\
dimension,key,offered,short_abandons,abandoned,max_wait_reached,answered,answered_within_service_level,transferred,settled_first_contact,answer_rate,service_level,settled_first_contact_rate,average_wait_s,longest_wait_s
total,,4,1,0,1,2,1,1,1,0.6667,0.3333,0.5000,43.500,70.000
queue,\"a,b\",2,0,0,1,1,0,1,0,0.5000,0.0000,0.0000,55.250,70.000
queue,sygedagpenge,2,1,0,0,1,1,0,1,1.0000,1.0000,1.0000,20.000,20.000
topic,sygemelding,2,1,0,0,1,1,0,1,1.0000,1.0000,1.0000,20.000,20.000
topic,\"x\"\"y\",2,0,0,1,1,0,1,0,0.5000,0.0000,0.0000,55.250,70.000
hour,8,2,1,0,0,1,1,0,1,1.0000,1.0000,1.0000,20.000,20.000
hour,9,2,0,0,1,1,0,1,0,0.5000,0.0000,0.0000,55.250,70.000
day,2025-06-11,4,1,0,1,2,1,1,1,0.6667,0.3333,0.5000,43.500,70.000
";
    assert_eq!(to_csv(&got), want);
    assert!(want.starts_with(&format!("{CSV_HEADER}\n")));
}

#[test]
fn json_has_plain_numbers() {
    let got = key_figures(
        &log("
            2025-06-11T06:00:00Z c1 ENTER  q - topic=t
            2025-06-11T06:00:20Z c1 ANSWER q anna wait_ms=20500
        "),
        &StatsParams::default(),
    );
    let json = serde_json::to_value(&got).unwrap();
    assert_eq!(json["total"]["average_wait"], serde_json::json!(20.5));
    assert_eq!(json["total"]["longest_wait"], serde_json::json!(20.5));
    assert_eq!(json["total"]["answer_rate"], serde_json::json!(1.0));
    assert_eq!(json["by_hour"]["8"]["offered"], serde_json::json!(1));
    assert_eq!(
        json["by_day"]["2025-06-11"]["answered"],
        serde_json::json!(1)
    );
    let empty = serde_json::to_value(key_figures(&[], &StatsParams::default())).unwrap();
    assert_eq!(empty["total"]["average_wait"], serde_json::Value::Null);
    assert_eq!(empty["total"]["answer_rate"], serde_json::Value::Null);
}
