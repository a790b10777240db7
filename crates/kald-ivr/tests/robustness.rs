//! Bad input never panics: random keys and timeouts through the default flow, and mangled
//! flow files through the checker. A small seeded generator keeps it deterministic.

mod common;

use std::time::Duration;

use kald_ivr::Input;

/// xorshift64*: enough randomness for this, with a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_calls_through_the_default_flow_never_panic_and_always_end() {
    let flow = common::hovednummer();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let keys = [
        '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'x',
    ];
    let starts = [
        "2026-11-23T08:10",
        "2026-11-23T09:15",
        "2026-11-25T14:58",
        "2026-12-25T10:00",
    ];
    for round in 0..300 {
        let start = starts[round % starts.len()];
        let mut call = common::Call::new(flow.clone(), common::cph(start));
        call.answer();
        for _ in 0..400 {
            if call.ivr.is_finished() || call.outcome().ended_by.is_some() {
                break;
            }
            match rng.below(10) {
                0..=4 => {
                    let key = keys[usize::try_from(rng.below(keys.len() as u64)).unwrap_or(0)];
                    call.advance(Duration::from_millis(rng.below(3000)));
                    call.input(Input::Digit(key));
                }
                5..=6 => {
                    call.prompt_done();
                }
                7..=8 => {
                    if call.ivr.poll_timeout().is_some() {
                        call.fire_next();
                    } else {
                        call.prompt_done();
                    }
                }
                _ => {
                    // Spurious timeout.
                    let wall = call.wall.clone();
                    call.ivr.handle_timeout(call.now, &wall);
                }
            }
        }
        // Driving it to the end with only prompt ends and timeouts always finishes.
        for _ in 0..100 {
            if call.outcome().ended_by.is_some() {
                break;
            }
            call.prompt_done();
            if call.ivr.poll_timeout().is_some() {
                call.fire_next();
            }
        }
        assert!(
            call.outcome().ended_by.is_some(),
            "round {round}: {:?}",
            call.ivr
        );
    }
}

#[test]
fn mangled_flow_files_never_panic_the_checker() {
    let text =
        std::fs::read_to_string(common::crate_dir().join("../../ivr-flows/hovednummer.toml"))
            .unwrap_or_default();
    let bytes = text.as_bytes();
    let mut rng = Rng(0xdead_beef_0042);
    let junk = [
        "\"",
        "[",
        "]",
        "=",
        "\n",
        "kind = \"menu\"\n",
        "{",
        "}",
        "æ",
        "#",
        "next = \"x\"\n",
        "24:00",
        "-",
    ];
    for _ in 0..400 {
        let mut mangled = bytes.to_vec();
        for _ in 0..=rng.below(4) {
            let at = usize::try_from(rng.below(mangled.len() as u64 + 1)).unwrap_or(0);
            match rng.below(3) {
                0 => {
                    let end = (at + usize::try_from(rng.below(40)).unwrap_or(0)).min(mangled.len());
                    mangled.drain(at..end);
                }
                _ => {
                    let j = junk[usize::try_from(rng.below(junk.len() as u64)).unwrap_or(0)];
                    mangled.splice(at..at, j.bytes());
                }
            }
        }
        let mangled = String::from_utf8_lossy(&mangled);
        let _ = kald_ivr::load_str("mangled", &mangled);
    }
}
