//! The JSON Schema string formats the grammar enforces byte by byte: `date` and `date-time` (RFC 3339 §5.6),
//! `uuid` (RFC 4122 §3) and `email` (an RFC 5321 mailbox in dot-atom form with a DNS domain).
//!
//! Each format is a small deterministic machine over the string's characters; its state packs into a `u32` so it
//! rides in the string frame of the automaton. Every state a step can reach can still be completed
//! ([`StringFormat::remaining`] is finite), so the automaton keeps its viable-prefix invariant.
//!
//! What is produced is a subset of what the RFCs accept, chosen so that common validators accept all of it:
//! - `date-time`: `T` and `Z` may be lower case (RFC 3339 §5.6 note); seconds are `00`–`59` (a leap second `60` is
//!   valid only at the end of a UTC day that has one, which a generator cannot know, so it is not produced); at
//!   most 9 fraction digits.
//! - `uuid`: the 8-4-4-4-12 layout of hexadecimal digits, either case (version and variant bits are not checked:
//!   RFC 4122 keeps the nil UUID and every version valid).
//! - `email`: local part `atext+("."atext+)*` of at most 64 characters, then a domain of at least two labels of
//!   letters, digits and inner hyphens (at most 63 characters each, 253 in all) whose last label has a letter; at
//!   most 254 characters. Quoted local parts and address literals are not produced.
//! - Strings with a format are written in ASCII without escapes (the same values; only the encoding is fixed).

/// A string format (`"format"` keyword) the grammar enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StringFormat {
    /// RFC 3339 `full-date`: `YYYY-MM-DD`, a real calendar day.
    Date,
    /// RFC 3339 `date-time`: `YYYY-MM-DDThh:mm:ss[.f]Z` or with a `±hh:mm` offset.
    DateTime,
    /// An e-mail address (RFC 5321 mailbox, dot-atom local part).
    Email,
    /// RFC 4122 UUID: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hexadecimal.
    Uuid,
}

/// Marks a state that cannot be completed.
const NEVER: u32 = u32::MAX;
/// Most fraction digits of a `date-time` second.
const MAX_FRACTION_DIGITS: u32 = 9;
/// Bytes tried first (then the rest of printable ASCII) when writing the shortest completion.
const PREFERRED: &[u8] = b"0a";

impl StringFormat {
    /// The format named by a `"format"` value, if the grammar supports it.
    pub fn from_name(name: &str) -> Option<StringFormat> {
        match name {
            "date" => Some(StringFormat::Date),
            "date-time" => Some(StringFormat::DateTime),
            "email" => Some(StringFormat::Email),
            "uuid" => Some(StringFormat::Uuid),
            _ => None,
        }
    }

    /// The keyword value (`"date-time"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            StringFormat::Date => "date",
            StringFormat::DateTime => "date-time",
            StringFormat::Email => "email",
            StringFormat::Uuid => "uuid",
        }
    }

    /// Characters of the shortest value.
    pub fn min_len(self) -> u32 {
        self.remaining(0)
    }

    /// Characters of the longest value.
    pub fn max_len(self) -> u32 {
        match self {
            StringFormat::Date => 10,
            StringFormat::DateTime => 20 + 1 + MAX_FRACTION_DIGITS + 5,
            StringFormat::Email => MAX_EMAIL,
            StringFormat::Uuid => 36,
        }
    }

    /// The state after character `b` (state 0 is the start), or `None` when `b` cannot come next.
    pub(crate) fn step(self, state: u32, b: u8) -> Option<u32> {
        let next = match self {
            StringFormat::Date => date_step(state, b, false),
            StringFormat::DateTime => date_step(state, b, true),
            StringFormat::Uuid => uuid_step(state, b),
            StringFormat::Email => Email::unpack(state).step(b).filter(|e| e.remaining() != NEVER).map(Email::pack),
        }?;
        (self.remaining(next) != NEVER).then_some(next)
    }

    /// Fewest characters that complete a value from `state` (0: the value may end here).
    pub(crate) fn remaining(self, state: u32) -> u32 {
        match self {
            StringFormat::Date => 10 - Date::unpack(state).pos.min(10),
            StringFormat::DateTime => date_time_remaining(Date::unpack(state).pos),
            StringFormat::Uuid => 36 - state.min(36),
            StringFormat::Email => Email::unpack(state).remaining(),
        }
    }

    /// Appends the shortest completion from `state`. Deterministic: a state always gets the same completion, and
    /// the completion of a state reached along it is its rest.
    pub(crate) fn completion(self, mut state: u32, out: &mut Vec<u8>) {
        let mut need = self.remaining(state);
        while need > 0 && need != NEVER {
            let (b, s) = PREFERRED
                .iter()
                .copied()
                .chain(0x21u8..0x7f)
                .find_map(|b| self.step(state, b).filter(|&s| self.remaining(s) + 1 == need).map(|s| (b, s)))
                .expect("a completable format state has a next character on a shortest completion");
            out.push(b);
            state = s;
            need -= 1;
        }
    }
}

// ------------------------------------------------------------------------------------------------------------
// date and date-time
// ------------------------------------------------------------------------------------------------------------

/// `pos` counts characters up to the end of the seconds (0..=19); then 20 + n inside a fraction of n digits,
/// 30 + k after k characters of a `±hh:mm` offset, 35 after a whole offset and 36 after `Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Date {
    pos: u32,
    /// The previous digit (two-digit fields are checked at their second digit).
    prev: u32,
    /// The first two year digits modulo 4 (for the 400-year leap rule).
    century_mod4: u32,
    /// The last two year digits.
    year_low: u32,
    leap: bool,
    month: u32,
}

impl Date {
    fn unpack(s: u32) -> Date {
        Date {
            pos: s & 0x3f,
            prev: (s >> 6) & 0xf,
            century_mod4: (s >> 10) & 0x3,
            year_low: (s >> 12) & 0x7f,
            leap: (s >> 19) & 1 == 1,
            month: (s >> 20) & 0xf,
        }
    }

    fn pack(self) -> u32 {
        self.pos
            | self.prev << 6
            | self.century_mod4 << 10
            | self.year_low << 12
            | u32::from(self.leap) << 19
            | self.month << 20
    }

    fn days_in_month(self) -> u32 {
        match self.month {
            2 if self.leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }
}

fn digit(b: u8) -> Option<u32> {
    b.is_ascii_digit().then(|| (b - b'0') as u32)
}

/// Steps a `date` (`with_time` false) or `date-time` machine.
fn date_step(state: u32, b: u8, with_time: bool) -> Option<u32> {
    let mut d = Date::unpack(state);
    // The value of a two-digit field whose first digit is `d.prev`, if it lies in `min..=max`.
    let field = |d: &Date, min: u32, max: u32| digit(b).map(|u| d.prev * 10 + u).filter(|v| (min..=max).contains(v));
    match d.pos {
        0 | 2 => d.prev = digit(b)?,
        1 => d.century_mod4 = (d.prev * 10 + digit(b)?) % 4,
        3 => {
            d.year_low = d.prev * 10 + digit(b)?;
            d.leap = if d.year_low == 0 { d.century_mod4 == 0 } else { d.year_low.is_multiple_of(4) };
        }
        4 | 7 if b == b'-' => {}
        5 => d.prev = digit(b).filter(|&t| t <= 1)?,
        6 => d.month = field(&d, 1, 12)?,
        8 => d.prev = digit(b).filter(|&t| t <= d.days_in_month() / 10)?,
        9 => {
            field(&d, 1, d.days_in_month())?;
        }
        10 if with_time && (b == b'T' || b == b't') => {}
        // Hours 00-23; minutes and seconds 00-59.
        11 | 30 => d.prev = digit(b).filter(|&t| t <= 2)?,
        14 | 17 | 33 => d.prev = digit(b).filter(|&t| t <= 5)?,
        12 | 31 => {
            field(&d, 0, 23)?;
        }
        15 | 18 | 34 => {
            field(&d, 0, 59)?;
        }
        13 | 16 | 32 if b == b':' => {}
        19 if b == b'.' => {
            d.pos = 20;
            return Some(d.pack());
        }
        // After the seconds, or after at least one fraction digit: the offset.
        19 | 21..=29 if b == b'Z' || b == b'z' => {
            d.pos = 36;
            return Some(d.pack());
        }
        19 | 21..=29 if b == b'+' || b == b'-' => {
            d.pos = 30;
            return Some(d.pack());
        }
        p @ 20..=28 if p - 20 < MAX_FRACTION_DIGITS && b.is_ascii_digit() => {}
        _ => return None,
    }
    if !with_time && d.pos >= 10 {
        return None;
    }
    d.pos += 1;
    Some(d.pack())
}

fn date_time_remaining(pos: u32) -> u32 {
    match pos {
        0..=18 => 19 - pos + 1,
        19 => 1,
        20 => 2,
        21..=29 => 1,
        30..=35 => 35 - pos,
        _ => 0,
    }
}

// ------------------------------------------------------------------------------------------------------------
// uuid
// ------------------------------------------------------------------------------------------------------------

fn uuid_step(pos: u32, b: u8) -> Option<u32> {
    let ok = match pos {
        8 | 13 | 18 | 23 => b == b'-',
        0..=35 => b.is_ascii_hexdigit(),
        _ => false,
    };
    ok.then_some(pos + 1)
}

// ------------------------------------------------------------------------------------------------------------
// email
// ------------------------------------------------------------------------------------------------------------

const MAX_LOCAL: u32 = 64;
const MAX_LABEL: u32 = 63;
const MAX_DOMAIN: u32 = 253;
const MAX_EMAIL: u32 = 254;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Email {
    in_domain: bool,
    local_len: u32,
    /// The local part is empty or ends with a dot.
    local_open: bool,
    domain_len: u32,
    label_len: u32,
    /// The domain has a dot (so the current label may be the last one).
    dotted: bool,
    last_hyphen: bool,
    label_alpha: bool,
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

impl Email {
    fn unpack(s: u32) -> Email {
        Email {
            in_domain: s & 1 == 1,
            local_len: (s >> 1) & 0x7f,
            local_open: (s >> 8) & 1 == 0, // stored inverted, so that state 0 is the start
            domain_len: (s >> 9) & 0xff,
            label_len: (s >> 17) & 0x3f,
            dotted: (s >> 23) & 1 == 1,
            last_hyphen: (s >> 24) & 1 == 1,
            label_alpha: (s >> 25) & 1 == 1,
        }
    }

    fn pack(self) -> u32 {
        u32::from(self.in_domain)
            | self.local_len.min(0x7f) << 1
            | u32::from(!self.local_open) << 8
            | self.domain_len.min(0xff) << 9
            | self.label_len.min(0x3f) << 17
            | u32::from(self.dotted) << 23
            | u32::from(self.last_hyphen) << 24
            | u32::from(self.label_alpha) << 25
    }

    fn step(mut self, b: u8) -> Option<Email> {
        if !self.in_domain {
            match b {
                b'@' if !self.local_open => self.in_domain = true,
                b'.' if !self.local_open => {
                    self.local_len += 1;
                    self.local_open = true;
                }
                _ if is_atext(b) => {
                    self.local_len += 1;
                    self.local_open = false;
                }
                _ => return None,
            }
            return Some(self);
        }
        match b {
            b'.' if self.label_len > 0 && !self.last_hyphen => {
                self.dotted = true;
                self.label_len = 0;
                self.label_alpha = false;
            }
            b'-' if self.label_len > 0 => {
                self.label_len += 1;
                self.last_hyphen = true;
            }
            _ if b.is_ascii_alphanumeric() => {
                self.label_len += 1;
                self.last_hyphen = false;
                self.label_alpha |= b.is_ascii_alphabetic();
            }
            _ => return None,
        }
        self.domain_len += 1;
        Some(self)
    }

    /// Fewest characters to a complete address (`NEVER` once the length limits cannot be met).
    fn remaining(self) -> u32 {
        let (rest_local, rest_domain) = if !self.in_domain {
            // A local character if needed, then "@" and the shortest domain "a.a".
            (u32::from(self.local_open), 1 + 3)
        } else {
            // End in this label (if it may be the last: after a dot, with a letter, not after a hyphen), or
            // close it (adding a character first when it is empty or ends with a hyphen) and add "." + a letter.
            let fix = u32::from(self.label_len == 0 || self.last_hyphen || !self.label_alpha);
            let end_here = if self.dotted && self.label_len + fix <= MAX_LABEL { fix } else { NEVER };
            let pre = u32::from(self.label_len == 0 || self.last_hyphen);
            let new_label = if self.label_len + pre <= MAX_LABEL { pre + 2 } else { NEVER };
            (0, end_here.min(new_label))
        };
        if rest_domain == NEVER {
            return NEVER;
        }
        let local = self.local_len + rest_local;
        let (domain, at) = if self.in_domain { (self.domain_len + rest_domain, 1) } else { (rest_domain - 1, 1) };
        if local > MAX_LOCAL || self.label_len > MAX_LABEL || domain > MAX_DOMAIN || local + at + domain > MAX_EMAIL {
            return NEVER;
        }
        rest_local + rest_domain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(f: StringFormat, s: &str) -> bool {
        let mut st = 0;
        for &b in s.as_bytes() {
            match f.step(st, b) {
                Some(n) => st = n,
                None => return false,
            }
        }
        f.remaining(st) == 0
    }

    #[test]
    fn dates_follow_the_calendar() {
        for ok in [
            "2024-02-29",
            "2000-02-29",
            "1999-12-31",
            "0000-01-01",
            "2023-04-30",
            "9999-11-30",
            "1600-02-29",
            "2024-10-10",
        ] {
            assert!(accepts(StringFormat::Date, ok), "{ok}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2100-02-29",
            "2024-02-30",
            "2024-04-31",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "2024-01-32",
            "24-01-01",
            "2024-1-01",
            "2024-01-1",
            "2024/01/01",
            "2024-01-01T",
            "",
            "2024-01-011",
            "2024-20-01",
        ] {
            assert!(!accepts(StringFormat::Date, bad), "{bad}");
        }
    }

    #[test]
    fn date_times_follow_rfc3339() {
        for ok in [
            "2024-02-29T23:59:59Z",
            "1985-04-12T23:20:50.52Z",
            "1996-12-19T16:39:57-08:00",
            "2024-01-01t00:00:00z",
            "2024-01-01T00:00:00.123456789+23:59",
            "2024-06-30T12:00:00+00:00",
            "2024-06-30T19:09:09.0Z",
        ] {
            assert!(accepts(StringFormat::DateTime, ok), "{ok}");
        }
        for bad in [
            "2024-01-01",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01 10:00:00Z",
            "2024-01-01T10:00:00",
            "2024-01-01T10:00:00.Z",
            "2024-01-01T10:00:00.1234567890Z",
            "2024-01-01T10:00Z",
            "2024-01-01T10:00:00+24:00",
            "2024-01-01T10:00:00+05:60",
            "2024-01-01T10:00:00+0500",
            "2023-02-29T10:00:00Z",
            "2024-01-01T10:00:00ZZ",
            "2024-01-01T1:00:00Z",
            "2024-01-01T30:00:00Z",
        ] {
            assert!(!accepts(StringFormat::DateTime, bad), "{bad}");
        }
    }

    #[test]
    fn uuids_have_the_8_4_4_4_12_layout() {
        for ok in [
            "123e4567-e89b-12d3-a456-426614174000",
            "00000000-0000-0000-0000-000000000000",
            "AbCdEf01-2345-6789-aBcD-eF0123456789",
        ] {
            assert!(accepts(StringFormat::Uuid, ok), "{ok}");
        }
        for bad in [
            "123e4567e89b12d3a456426614174000",
            "123e4567-e89b-12d3-a456-42661417400",
            "123e4567-e89b-12d3-a456-4266141740000",
            "123e4567-e89b-12d3-a456_426614174000",
            "g23e4567-e89b-12d3-a456-426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
        ] {
            assert!(!accepts(StringFormat::Uuid, bad), "{bad}");
        }
    }

    #[test]
    fn emails_are_dot_atoms_at_dns_names() {
        let long_label = "a".repeat(63);
        let long_local = "b".repeat(64);
        for ok in [
            "a@b.co".to_string(),
            "first.last+tag@sub.example.org".into(),
            "x_y-z@a-b.c1d".into(),
            "o'neil@x.io".into(),
            format!("{long_local}@{long_label}.com"),
            "1@2.a".into(),
            "a@b--c.de".into(),
        ] {
            assert!(accepts(StringFormat::Email, &ok), "{ok}");
        }
        for bad in [
            "plain".to_string(),
            "@b.co".into(),
            "a@".into(),
            "a@b".into(),
            "a@.b.co".into(),
            "a@b..co".into(),
            ".a@b.co".into(),
            "a.@b.co".into(),
            "a..b@c.co".into(),
            "a@-b.co".into(),
            "a@b-.co".into(),
            "a@b.c-".into(),
            "a@b.123".into(),
            "a b@c.co".into(),
            "a@b@c.co".into(),
            format!("{long_local}b@x.co"),
            format!("a@{long_label}a.com"),
            "a@b_c.co".into(),
            "a@b.co.".into(),
        ] {
            assert!(!accepts(StringFormat::Email, &bad), "{bad}");
        }
        // At most 254 characters in all.
        let domain = format!("{0}.{0}.{0}.{1}", "d".repeat(63), "e".repeat(59)); // 251 characters
        assert!(accepts(StringFormat::Email, &format!("ab@{domain}")));
        assert!(!accepts(StringFormat::Email, &format!("abc@{domain}")));
    }

    #[test]
    fn completions_are_shortest_and_valid_from_every_prefix() {
        for (f, sample) in [
            (StringFormat::Date, "2024-02-29"),
            (StringFormat::DateTime, "1996-12-19T16:39:57.5-08:00"),
            (StringFormat::DateTime, "2024-01-01T00:00:00Z"),
            (StringFormat::Uuid, "123e4567-e89b-12d3-a456-426614174000"),
            (StringFormat::Email, "first.last@sub-x.example.org"),
            (StringFormat::Email, "a@b-"),
        ] {
            let mut st = 0;
            for i in 0..=sample.len() {
                let mut done = sample.as_bytes()[..i].to_vec();
                let mut rest = Vec::new();
                f.completion(st, &mut rest);
                assert_eq!(rest.len() as u32, f.remaining(st), "{f:?} after {:?}", &sample[..i]);
                done.extend_from_slice(&rest);
                assert!(accepts(f, std::str::from_utf8(&done).unwrap()), "{f:?}: {:?}", String::from_utf8_lossy(&done));
                if i < sample.len() {
                    st = f.step(st, sample.as_bytes()[i]).unwrap();
                }
            }
        }
        assert_eq!(StringFormat::Email.min_len(), 5);
        assert_eq!(StringFormat::DateTime.min_len(), 20);
        assert_eq!(StringFormat::Date.min_len(), 10);
        assert_eq!(StringFormat::Uuid.min_len(), 36);
    }
}
