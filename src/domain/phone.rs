//! Mainland mobile numbers given as a contact for a call back.
//!
//! A number is personal data: it is parsed here, encrypted before it is
//! stored, shown only masked, and never written to a log. `Debug` prints the
//! masked form so that a stray `{:?}` cannot leak it.

use std::fmt;

use super::error::FieldViolation;

#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts an 11-digit mainland mobile number (1, then 3-9, then nine
    /// digits), optionally written with a +86 or 86 prefix, spaces or dashes.
    pub fn parse(field: &str, raw: &str) -> Result<PhoneNumber, FieldViolation> {
        let digits: String = raw
            .trim()
            .trim_start_matches('+')
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        let national = match digits.strip_prefix("86") {
            Some(rest) if rest.len() == 11 => rest,
            _ => digits.as_str(),
        };

        let bytes = national.as_bytes();
        let valid = bytes.len() == 11
            && bytes.iter().all(u8::is_ascii_digit)
            && bytes[0] == b'1'
            && (b'3'..=b'9').contains(&bytes[1]);
        if !valid {
            return Err(FieldViolation::new(
                field,
                "must be an 11-digit mainland mobile number starting with 13-19",
            ));
        }
        Ok(PhoneNumber(national.to_owned()))
    }

    /// The number as stored inside the ciphertext.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// "138****5678": what staff and the citizen are shown.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_spellings_of_one_number() {
        for raw in ["13812345678", "+86 138 1234 5678", "86-138-1234-5678"] {
            assert_eq!(
                PhoneNumber::parse("p", raw).unwrap().expose(),
                "13812345678"
            );
        }
    }

    #[test]
    fn rejects_landlines_short_numbers_and_letters() {
        for raw in [
            "0755-12345678",
            "1381234567",
            "12812345678",
            "1381234567a",
            "",
        ] {
            assert!(PhoneNumber::parse("p", raw).is_err(), "{raw} was accepted");
        }
    }

    #[test]
    fn debug_output_shows_only_the_mask() {
        let phone = PhoneNumber::parse("p", "13812345678").unwrap();
        assert_eq!(phone.masked(), "138****5678");
        assert!(!format!("{phone:?}").contains("1234"));
    }
}
