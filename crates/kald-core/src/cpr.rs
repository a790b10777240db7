//! Validated, redacted Danish CPR numbers (personal identity numbers).
//!
//! A CPR number is confidential personal data (databeskyttelsesloven § 11): it must never reach
//! a log. [`Cpr`] therefore redacts itself in `Debug` and `Display`, and the only ways to see the
//! digits are the explicitly named [`Cpr::expose_digits`] and [`Cpr::expose_dashed`], so every
//! use is visible in review. [`CprError`] never carries any of the input.

use core::fmt;
use core::str::FromStr;

use jiff::civil::Date;

/// The redacted form shown instead of the digits in `Display` and `Debug`.
const REDACTED: &str = "******-****";

/// A validated Danish CPR number; redacted in `Debug` and `Display` so it cannot leak into logs.
///
/// Validation checks the length, that every character is a digit and that the birth date
/// (with the century derived from the 7th digit) exists. The modulus-11 check is deliberately
/// never applied: numbers issued since 2007 need not satisfy it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cpr {
    /// The ten ASCII digits, without the dash.
    digits: [u8; 10],
    /// The birth date encoded in the first six digits plus the century rule.
    birth_date: Date,
}

/// The legal sex encoded in a CPR number's last digit (odd for men, even for women).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Last digit odd.
    Male,
    /// Last digit even.
    Female,
}

/// Why a string is not a valid CPR number; never contains any of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CprError {
    /// The input is neither 10 digits nor 6 digits, a dash and 4 digits.
    #[error("a CPR number has 10 digits (DDMMYYSSSS or DDMMYY-SSSS), got {len} characters")]
    WrongLength {
        /// Number of characters in the input (not the characters themselves).
        len: usize,
    },
    /// The input has the right length but contains something other than digits (or a
    /// misplaced dash).
    #[error("a CPR number may only contain digits and an optional dash after the 6th digit")]
    NotDigits,
    /// The first six digits, with the century from the 7th digit, are not a calendar date.
    #[error("the birth date in the CPR number does not exist")]
    NoSuchDate,
}

impl Cpr {
    /// Parses and validates `DDMMYYSSSS` or `DDMMYY-SSSS` (no modulus-11 check, by design).
    pub fn parse(input: &str) -> Result<Self, CprError> {
        let bytes = input.as_bytes();
        let mut digits = [0u8; 10];
        match bytes.len() {
            10 => digits.copy_from_slice(bytes),
            11 if bytes[6] == b'-' => {
                digits[..6].copy_from_slice(&bytes[..6]);
                digits[6..].copy_from_slice(&bytes[7..]);
            }
            _ => {
                // Count characters, not bytes, so multi-byte input gets a sensible answer.
                let len = input.chars().count();
                return Err(match len {
                    10 | 11 => CprError::NotDigits,
                    _ => CprError::WrongLength { len },
                });
            }
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(CprError::NotDigits);
        }

        let d = |i: usize| digits[i] - b'0';
        let two = |i: usize| d(i) * 10 + d(i + 1);
        let day = two(0);
        let month = two(2);
        let yy = i16::from(two(4));
        let century: i16 = match d(6) {
            0..=3 => 1900,
            4 | 9 if yy <= 36 => 2000,
            4 | 9 => 1900,
            _ if yy <= 57 => 2000,
            _ => 1800,
        };
        // Day and month are at most 99, so the casts to i8 cannot overflow.
        let birth_date =
            Date::new(century + yy, month as i8, day as i8).map_err(|_| CprError::NoSuchDate)?;
        Ok(Self { digits, birth_date })
    }

    /// The birth date encoded in the number, with the century resolved from the 7th digit.
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    /// The sex encoded in the last digit, for forms that need it.
    pub fn sex(&self) -> Sex {
        if self.digits[9] % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// Whether the last digit is odd; shorthand for `sex() == Sex::Male`.
    pub fn is_male(&self) -> bool {
        self.sex() == Sex::Male
    }

    /// The ten digits without a dash; named `expose_` so every disclosure is visible in review.
    pub fn expose_digits(&self) -> &str {
        // Invariant: `parse` only stores ASCII digits, which are valid UTF-8.
        core::str::from_utf8(&self.digits).expect("CPR digits are ASCII")
    }

    /// The number as `DDMMYY-SSSS`; named `expose_` so every disclosure is visible in review.
    pub fn expose_dashed(&self) -> String {
        let digits = self.expose_digits();
        format!("{}-{}", &digits[..6], &digits[6..])
    }
}

impl FromStr for Cpr {
    type Err = CprError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cpr({REDACTED})")
    }
}

impl fmt::Display for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use jiff::civil::date;

    /// The old modulus-11 check, only to prove that `parse` does not apply it.
    fn passes_mod11(digits: &str) -> bool {
        const WEIGHTS: [u32; 10] = [4, 3, 2, 7, 6, 5, 4, 3, 2, 1];
        let sum: u32 = digits
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        sum.is_multiple_of(11)
    }

    #[test]
    fn parses_plain_and_dashed() {
        let plain = Cpr::parse("0707614285").unwrap();
        let dashed: Cpr = "070761-4285".parse().unwrap();
        assert_eq!(plain, dashed);
        assert_eq!(plain.expose_digits(), "0707614285");
        assert_eq!(plain.expose_dashed(), "070761-4285");
        assert_eq!(plain.birth_date(), date(1961, 7, 7));
    }

    #[test]
    fn accepts_number_failing_mod11() {
        // A post-2007 style number: valid date, but the weighted sum is not divisible by 11.
        let s = "0101901235";
        assert!(!passes_mod11(s));
        let cpr = Cpr::parse(s).unwrap();
        assert_eq!(cpr.birth_date(), date(1990, 1, 1));
        // And one that happens to pass is of course accepted too.
        assert!(passes_mod11("0707614285"));
    }

    #[test]
    fn century_rules() {
        let year = |s: &str| Cpr::parse(s).unwrap().birth_date().year();
        // 7th digit 0-3: always 19YY.
        assert_eq!(year("0101000001"), 1900);
        assert_eq!(year("0101993001"), 1999);
        // 4 or 9: 20YY up to 36, else 19YY.
        assert_eq!(year("0101364001"), 2036);
        assert_eq!(year("0101374001"), 1937);
        assert_eq!(year("0101369001"), 2036);
        assert_eq!(year("0101379001"), 1937);
        // 5-8: 20YY up to 57, else 18YY.
        assert_eq!(year("0101575001"), 2057);
        assert_eq!(year("0101588001"), 1858);
        assert_eq!(year("0101006001"), 2000);
        assert_eq!(year("0101997001"), 1899);
    }

    #[test]
    fn date_must_exist() {
        // 29 Feb 2000 (leap year, 4th digit rule -> 2000) exists; 29 Feb 1900 does not.
        assert_eq!(
            Cpr::parse("2902004001").unwrap().birth_date(),
            date(2000, 2, 29)
        );
        assert_eq!(Cpr::parse("2902001001"), Err(CprError::NoSuchDate));
        assert_eq!(Cpr::parse("2902011001"), Err(CprError::NoSuchDate));
        assert_eq!(Cpr::parse("3204901234"), Err(CprError::NoSuchDate));
        assert_eq!(Cpr::parse("0013901234"), Err(CprError::NoSuchDate));
        assert_eq!(Cpr::parse("0001901234"), Err(CprError::NoSuchDate));
        assert_eq!(Cpr::parse("3104901234"), Err(CprError::NoSuchDate));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Cpr::parse(""), Err(CprError::WrongLength { len: 0 }));
        assert_eq!(
            Cpr::parse("010190123"),
            Err(CprError::WrongLength { len: 9 })
        );
        assert_eq!(
            Cpr::parse("01019012345"),
            Err(CprError::NotDigits),
            "11 digits: the 7th character must be the dash"
        );
        assert_eq!(
            Cpr::parse("010190-12345"),
            Err(CprError::WrongLength { len: 12 })
        );
        assert_eq!(Cpr::parse("01019-01234"), Err(CprError::NotDigits));
        assert_eq!(Cpr::parse("010190123a"), Err(CprError::NotDigits));
        assert_eq!(Cpr::parse(" 010190123"), Err(CprError::NotDigits));
        assert_eq!(Cpr::parse("+010190123"), Err(CprError::NotDigits));
        assert_eq!(Cpr::parse("010190-12-4"), Err(CprError::NotDigits));
        // Multi-byte characters: 10 characters but more bytes, and non-ASCII digits.
        assert_eq!(Cpr::parse("010190123٤"), Err(CprError::NotDigits));
        assert_eq!(Cpr::parse("01019012ææ"), Err(CprError::NotDigits));
        assert_eq!(Cpr::parse("ææææææ"), Err(CprError::WrongLength { len: 6 }));
    }

    #[test]
    fn sex_from_last_digit() {
        let male = Cpr::parse("0101901235").unwrap();
        let female = Cpr::parse("0101901234").unwrap();
        assert_eq!(male.sex(), Sex::Male);
        assert!(male.is_male());
        assert_eq!(female.sex(), Sex::Female);
        assert!(!female.is_male());
    }

    #[test]
    fn display_and_debug_are_redacted() {
        let cpr = Cpr::parse("070761-4285").unwrap();
        let shown = [
            format!("{cpr}"),
            format!("{cpr:?}"),
            format!("{cpr:#?}"),
            format!("{:?}", Some(&cpr)),
        ];
        for s in &shown {
            assert!(!s.contains("0707"), "{s}");
            assert!(!s.contains("4285"), "{s}");
            assert!(!s.contains("61"), "{s}");
        }
        assert_eq!(shown[0], "******-****");
        assert_eq!(shown[1], "Cpr(******-****)");
    }

    #[test]
    fn errors_never_contain_input() {
        let inputs = [
            "3204907777",
            "320490-7777",
            "32049077",
            "3204907777123",
            "32049x7777",
            "3204977777",
        ];
        for input in inputs {
            let err = Cpr::parse(input).unwrap_err();
            for s in [format!("{err}"), format!("{err:?}")] {
                assert!(!s.contains("3204"), "{input}: {s}");
                assert!(!s.contains("7777"), "{input}: {s}");
            }
        }
    }
}
