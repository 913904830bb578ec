//! Currencies and amounts in integer minor units.

use std::fmt::Write;

/// A currency and its number of minor-unit decimals. The code is three
/// ASCII capitals, held inline (no allocation per use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    decimals: u32,
}

fn code_bytes(code: &str) -> [u8; 3] {
    let b = code.as_bytes();
    let mut out = *b"???";
    if b.len() == 3 {
        out.copy_from_slice(b);
    }
    out
}

/// The built-in currencies; they cannot be redefined.
pub const BUILTIN: [(&str, u32); 5] = [("JPY", 0), ("USD", 2), ("EUR", 2), ("AUD", 2), ("GBP", 2)];

/// Most minor-unit decimals a declared currency may have.
pub const MAX_DECIMALS: u32 = 18;

impl Currency {
    pub fn builtin(code: &str) -> Option<Currency> {
        BUILTIN.iter().find(|(c, _)| *c == code).map(|(c, d)| Currency {
            code: code_bytes(c),
            decimals: *d,
        })
    }

    /// A declared currency; `code` is three ASCII capitals (checked by the loader).
    pub fn declared(code: &str, decimals: u32) -> Currency {
        Currency {
            code: code_bytes(code),
            decimals,
        }
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Whether this currency's code is `code` (compares bytes: no UTF-8 check).
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_slice() == code.as_bytes()
    }

    /// Whether both have one code (whatever their decimals).
    pub fn same_code(&self, other: &Currency) -> bool {
        self.code == other.code
    }

    pub fn decimals(&self) -> u32 {
        self.decimals
    }

    /// `10^decimals`.
    pub fn scale(&self) -> u128 {
        10u128.pow(self.decimals)
    }

    /// Render minor units with exactly this currency's decimals (`1234.50`, JPY `1234`).
    pub fn format(&self, minor: i128) -> String {
        format_minor(minor, self.decimals)
    }
}

/// A currency code is three ASCII capitals.
pub fn valid_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Minor units as decimal text with exactly `decimals` digits after the point.
pub fn format_minor(minor: i128, decimals: u32) -> String {
    let mut s = String::new();
    write_minor(&mut s, minor, decimals);
    s
}

/// Append minor units as decimal text to `out`.
pub fn write_minor(out: &mut String, minor: i128, decimals: u32) {
    if minor < 0 {
        out.push('-');
    }
    let v = minor.unsigned_abs();
    if decimals == 0 {
        let _ = write!(out, "{v}");
        return;
    }
    let scale = 10u128.pow(decimals);
    let _ = write!(out, "{}.{:0width$}", v / scale, v % scale, width = decimals as usize);
}

/// Thousands-grouped rendering for people (`1,234,567.50`).
pub fn format_grouped(minor: i128, decimals: u32) -> String {
    let plain = format_minor(minor.abs(), decimals);
    let (int, frac) = match plain.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (plain.as_str(), None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let mut s = String::new();
    if minor < 0 {
        s.push('-');
    }
    s.push_str(&grouped);
    if let Some(f) = frac {
        s.push('.');
        s.push_str(f);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(format_minor(123450, 2), "1234.50");
        assert_eq!(format_minor(5, 2), "0.05");
        assert_eq!(format_minor(1234, 0), "1234");
        assert_eq!(format_minor(0, 2), "0.00");
        assert_eq!(format_grouped(123456750, 2), "1,234,567.50");
        assert_eq!(format_grouped(1055100000000, 0), "1,055,100,000,000");
        assert_eq!(format_grouped(-1000, 0), "-1,000");
        assert_eq!(format_grouped(100, 0), "100");
    }
}
