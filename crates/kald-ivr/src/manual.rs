//! The flow file format, for operators and reviewers (this module holds no code).
//!
//! A flow file is TOML, one per entry point; the file stem is the entry point's name. Comments
//! start with `#`. `kald flow check FILE` reports every mistake as `file:line:col: message`;
//! `kald flow simulate FILE --at 2026-11-23T09:15 --digits 1,0101901235#2` tries it;
//! `kald flow graph FILE` draws it.
//!
//! ```toml
//! start = "opening-hours"            # the first node
//! transfer_allowlist = ["+4570000000", "sip:jobcenter@kommune.example"]
//!
//! [calendar]                         # Europe/Copenhagen unless time_zone = "…"
//! monday = ["08:00-08:30 sick-only", "08:30-16:00"]   # a period without a mode is "open"
//! also_closed = ["christmas-eve", "new-years-eve", "constitution-day"]
//! [[calendar.closed]]                # a day the operators close
//! date = 2026-11-27
//! reason = "Personaledag"
//! [[calendar.special]]               # other hours on one date (wins over everything else)
//! date = 2026-06-04
//! hours = ["08:30-12:00"]
//!
//! [nodes.opening-hours]
//! kind = "hours"
//! when = { open = "welcome", sick-only = "welcome", closed = "closed", holiday = "closed" }
//!
//! [nodes.welcome]
//! kind = "play"
//! prompt = ["welcome", "recording-notice"]
//! notice = "recording"
//! next = "menu"
//! ```
//!
//! # Node kinds and their options
//! Every node has `kind` and may have `description`. Durations are written `"8s"`, `"1m 30s"`,
//! `"500ms"` (or a whole number of seconds); a prompt is a name (the sound file
//! `prompts/<name>.wav`, `.flac`, `.mp3` or `.ogg`) or a list of names played in order.
//!
//! | kind | options (required in **bold**) | defaults |
//! | --- | --- | --- |
//! | `play` | **prompt**, **next**, `barge_in`, `notice` (`"recording"` / `"message"`) | `barge_in = false` |
//! | `menu` | **prompt**, **choices** (`{ 1 = "node" }`), **fallback**, `timeout`, `invalid_prompt`, `no_input_prompt`, `retries`, `barge_in` | 6s, 2 retries, barge-in on |
//! | `collect` | **prompt**, **next**, **fallback**, `validator` (`"cpr"`), `digits` or `min_digits`/`max_digits`, `timeout` (first key), `inter_digit_timeout`, `overall_timeout`, `retries`, `invalid_prompt`, `no_input_prompt`, `read_back`, `field`, `barge_in` | 10s, 5s, none, 2 retries; `cpr` = 10 digits |
//! | `consent` | **prompt**, **next**, `yes`, `no`, `timeout`, `retries`, `invalid_prompt`, `yes_prompt`, `no_prompt`, `barge_in` | yes = 1, no = 2, 8s, 0 retries |
//! | `hours` | **when** (`{ open = …, <mode> = …, closed = …, holiday = … }`) | `holiday` falls back to `closed` |
//! | `queue` | **queue**, `topic`, `prompt`, `hold_music`, `announce_position` (interval), `priority` (0-9), `max_wait` + `fallback` | topic = the call's topic, else the queue |
//! | `transfer` | **target** (must be on `transfer_allowlist`), `prompt` | |
//! | `message` | **team**, **next**, `prompt`, `max_length` | 2m; `#` ends |
//! | `hangup` | `prompt` (the last words) | |
//! | `goto` | **to** | |
//! | `set` | **field**, **value**, **next** (`field = "topic"` sets the call's topic) | |
//! | `branch` | **field**, **cases** (`{ value = "node" }`), **otherwise** | |
//!
//! # Rules the checker enforces
//! - Every link names an existing node; every node can be reached from `start`; every node can
//!   lead to a `queue`, `transfer` or `hangup` (no endless loops).
//! - A `consent` node is preceded on every way to it by a `play` node with
//!   `notice = "recording"` (who records, why, for how long, how to withdraw: GDPR art. 13), and
//!   a `message` node by one with `notice = "message"`. A skippable notice is a warning.
//! - `consent` has a single `next`: yes, no and no answer go the same way, so saying no costs
//!   the caller nothing. No answer or another key counts as no.
//! - `collect` with `validator = "cpr"` takes exactly 10 digits and accepts a number whose
//!   birth date exists by the century rule of the 7th digit; the modulus-11 check is never
//!   applied. `#` ends the entry, `*` starts it again. The CPR is kept only in the call's
//!   protected CPR slot, never in a `field`. After the last failed try the call goes to
//!   `fallback` without a prompt.
//! - `hours` nodes say where calls go in each mode the calendar uses and when `closed`.
//!   Calendar periods must not end before they start or overlap; dates must exist.
//! - Public holidays (incl. Easter-based ones) are always closed unless a `[[calendar.special]]`
//!   entry gives hours for that date; `also_closed` adds Christmas Eve, New Year's Eve and
//!   Constitution Day.
//! - Prompt files must exist; `read_back = true` needs `you-entered` and `digit-0`…`digit-9`,
//!   `announce_position` needs `queue-position` and `position-1`…`position-9`.
