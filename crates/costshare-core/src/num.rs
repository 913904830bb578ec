//! Exact numbers: decimal text, rationals and the two roundings of the contract.
//!
//! Nothing here uses floating point. Load-time values (percentages, weights,
//! rates, caps) are [`BigRational`]s; the allocation hot path uses [`Q`], a
//! non-negative rational that stays in two `u128`s while it fits and moves to
//! a heap `BigRational` only when a value needs more room.
//!
//! Roundings, named wherever they are used:
//! - [`round_half_even`]: a single rational amount becoming minor units.
//! - floor plus largest remainder: splitting an amount among parties or lines
//!   (implemented where the split happens, using [`Q::mul_int_floor_rem`]).

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use std::cmp::Ordering;

pub type BigRational = num_rational_lite::Ratio;

/// A tiny exact rational over `BigInt` (we avoid the `num-rational` crate to
/// keep dependencies lean; only what allocation needs is here).
pub mod num_rational_lite {
    use super::*;

    /// Always reduced, denominator positive.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    pub struct Ratio {
        n: BigInt,
        d: BigInt,
    }

    impl Ratio {
        pub fn new(n: BigInt, d: BigInt) -> Ratio {
            assert!(!d.is_zero(), "zero denominator");
            let (mut n, mut d) = if d.sign() == Sign::Minus { (-n, -d) } else { (n, d) };
            let g = n.gcd(&d);
            if !g.is_one() && !g.is_zero() {
                n /= &g;
                d /= &g;
            }
            Ratio { n, d }
        }
        pub fn from_int<T: Into<BigInt>>(n: T) -> Ratio {
            Ratio {
                n: n.into(),
                d: BigInt::one(),
            }
        }
        pub fn zero() -> Ratio {
            Ratio::from_int(0)
        }
        pub fn one() -> Ratio {
            Ratio::from_int(1)
        }
        pub fn numer(&self) -> &BigInt {
            &self.n
        }
        pub fn denom(&self) -> &BigInt {
            &self.d
        }
        pub fn is_zero(&self) -> bool {
            self.n.is_zero()
        }
        pub fn is_negative(&self) -> bool {
            self.n.sign() == Sign::Minus
        }
        pub fn add(&self, o: &Ratio) -> Ratio {
            if self.d == o.d {
                return Ratio::new(&self.n + &o.n, self.d.clone());
            }
            Ratio::new(&self.n * &o.d + &o.n * &self.d, &self.d * &o.d)
        }
        pub fn sub(&self, o: &Ratio) -> Ratio {
            if self.d == o.d {
                return Ratio::new(&self.n - &o.n, self.d.clone());
            }
            Ratio::new(&self.n * &o.d - &o.n * &self.d, &self.d * &o.d)
        }
        pub fn mul(&self, o: &Ratio) -> Ratio {
            Ratio::new(&self.n * &o.n, &self.d * &o.d)
        }
        /// Panics on division by zero: callers check.
        pub fn div(&self, o: &Ratio) -> Ratio {
            Ratio::new(&self.n * &o.d, &self.d * &o.n)
        }
        pub fn min(self, o: Ratio) -> Ratio {
            if o < self { o } else { self }
        }
        /// floor(self), for any sign.
        pub fn floor(&self) -> BigInt {
            self.n.div_floor(&self.d)
        }
        /// Round half to even.
        pub fn round_half_even(&self) -> BigInt {
            let (q, r) = self.n.div_mod_floor(&self.d);
            // r in [0, d)
            let twice = &r * 2u32;
            match twice.cmp(&self.d) {
                Ordering::Less => q,
                Ordering::Greater => q + 1u32,
                Ordering::Equal => {
                    if q.is_even() {
                        q
                    } else {
                        q + 1u32
                    }
                }
            }
        }
    }

    impl PartialOrd for Ratio {
        fn partial_cmp(&self, o: &Ratio) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Ratio {
        fn cmp(&self, o: &Ratio) -> Ordering {
            (&self.n * &o.d).cmp(&(&o.n * &self.d))
        }
    }
}

/// Why a piece of decimal text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecimalError {
    Empty,
    /// A sign, exponent, separator or other character.
    Malformed,
    Negative,
    /// More digits after the point than allowed.
    TooManyDecimals {
        allowed: u32,
        found: u32,
    },
    /// The value does not fit the limits (an amount past i64 minor units).
    TooLarge,
}

impl std::fmt::Display for DecimalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecimalError::Empty => write!(f, "an empty value"),
            DecimalError::Malformed => write!(
                f,
                "not a plain decimal (digits with at most one '.', no sign, exponent or separators)"
            ),
            DecimalError::Negative => write!(f, "a negative value, which is not allowed here"),
            DecimalError::TooManyDecimals { allowed, found } => {
                write!(f, "{found} digits after the point where at most {allowed} are allowed")
            }
            DecimalError::TooLarge => write!(f, "a value beyond the limits (signed 64-bit minor units)"),
        }
    }
}

/// Decimal text split into its integer digits and fraction digits.
pub struct DecimalText<'a> {
    pub int: &'a str,
    pub frac: &'a str,
}

/// Parse decimal text: digits with at most one `.` (`1234`, `1234.5`,
/// `0.05`), surrounding spaces trimmed; no sign, `+`, exponent or separator.
/// Both sides of a point must have digits.
pub fn split_decimal(s: &str) -> Result<DecimalText<'_>, DecimalError> {
    let s = s.trim_matches(' ');
    if s.is_empty() {
        return Err(DecimalError::Empty);
    }
    if s.starts_with('-') && s.len() > 1 && s[1..].bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DecimalError::Negative);
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    let ok_int = !int.is_empty() && int.bytes().all(|b| b.is_ascii_digit());
    let ok_frac = frac.bytes().all(|b| b.is_ascii_digit()) && (frac.is_empty() != s.contains('.'));
    if !ok_int || !ok_frac {
        return Err(DecimalError::Malformed);
    }
    Ok(DecimalText { int, frac })
}

/// Decimal text as minor units with exactly `decimals` digits allowed after the
/// point (an amount). More digits, trailing zeros included, is an error.
pub fn parse_minor_units(s: &str, decimals: u32) -> Result<i64, DecimalError> {
    let t = split_decimal(s)?;
    let found = t.frac.len() as u32;
    if found > decimals {
        return Err(DecimalError::TooManyDecimals {
            allowed: decimals,
            found,
        });
    }
    let mut v: i128 = 0;
    for b in t.int.bytes().chain(t.frac.bytes()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or(DecimalError::TooLarge)?;
        if v > i64::MAX as i128 {
            return Err(DecimalError::TooLarge);
        }
    }
    for _ in found..decimals {
        v = v.checked_mul(10).ok_or(DecimalError::TooLarge)?;
    }
    i64::try_from(v).map_err(|_| DecimalError::TooLarge)
}

/// Decimal text as an exact rational with at most `max_decimals` digits after
/// the point (percentages, weights, quantities, rates: 18).
pub fn parse_rational(s: &str, max_decimals: u32) -> Result<BigRational, DecimalError> {
    let t = split_decimal(s)?;
    let found = t.frac.len() as u32;
    if found > max_decimals {
        return Err(DecimalError::TooManyDecimals {
            allowed: max_decimals,
            found,
        });
    }
    let mut digits = String::with_capacity(t.int.len() + t.frac.len());
    digits.push_str(t.int);
    digits.push_str(t.frac);
    let n = BigUint::parse_bytes(digits.as_bytes(), 10).ok_or(DecimalError::Malformed)?;
    let d = BigUint::from(10u32).pow(found);
    Ok(BigRational::new(BigInt::from(n), BigInt::from(d)))
}

/// `10^k` as a `BigInt`.
pub fn pow10(k: u32) -> BigInt {
    BigInt::from(10u32).pow(k)
}

/// Round half to even of `n / d` for `n >= 0`, `d > 0`, in `u128`.
pub fn rhe_u128(n: u128, d: u128) -> u128 {
    let q = n / d;
    let r = n % d;
    // compare 2r with d without overflow: r >= d - r
    match r.cmp(&(d - r)) {
        Ordering::Less => q,
        Ordering::Greater => q + 1,
        Ordering::Equal => q + (q & 1),
    }
}

fn gcd_u128(mut a: u128, mut b: u128) -> u128 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// A non-negative exact rational for the hot path: two `u128`s while the value
/// fits (reduced, denominator > 0), a boxed [`BigRational`] otherwise.
#[derive(Clone, Debug)]
pub enum Q {
    S(u128, u128),
    B(Box<BigRational>),
}

impl Q {
    pub const ZERO: Q = Q::S(0, 1);
    pub const ONE: Q = Q::S(1, 1);

    pub fn int(n: u128) -> Q {
        Q::S(n, 1)
    }

    fn small(n: u128, d: u128) -> Q {
        debug_assert!(d > 0);
        if n == 0 {
            return Q::ZERO;
        }
        if d == 1 {
            return Q::S(n, 1);
        }
        let g = gcd_u128(n, d);
        Q::S(n / g, d / g)
    }

    /// Decimal text (as [`parse_rational`] reads it, at most `max_decimals`
    /// digits after the point) straight to a `Q`, when its digits fit in
    /// `u128`; `None` otherwise (the caller then takes the general parser).
    /// Equal to `Q::from_big(&parse_rational(s, max_decimals)?)`.
    pub fn parse_decimal(s: &str, max_decimals: u32) -> Option<Q> {
        let t = split_decimal(s).ok()?;
        if t.frac.len() as u32 > max_decimals || t.int.len() + t.frac.len() > 38 {
            return None;
        }
        let mut n: u128 = 0;
        for b in t.int.bytes().chain(t.frac.bytes()) {
            n = n * 10 + (b - b'0') as u128;
        }
        Some(Q::small(n, 10u128.pow(t.frac.len() as u32)))
    }

    /// From a non-negative big rational (shrinks when it fits).
    pub fn from_big(r: &BigRational) -> Q {
        debug_assert!(!r.is_negative());
        match (r.numer().to_u128(), r.denom().to_u128()) {
            (Some(n), Some(d)) => Q::S(n, d),
            _ => Q::B(Box::new(r.clone())),
        }
    }

    fn norm(r: BigRational) -> Q {
        match (r.numer().to_u128(), r.denom().to_u128()) {
            (Some(n), Some(d)) => Q::S(n, d),
            _ => Q::B(Box::new(r)),
        }
    }

    pub fn to_big(&self) -> BigRational {
        match self {
            Q::S(n, d) => BigRational::new(BigInt::from(*n), BigInt::from(*d)),
            Q::B(b) => (**b).clone(),
        }
    }

    pub fn is_zero(&self) -> bool {
        match self {
            Q::S(n, _) => *n == 0,
            Q::B(b) => b.is_zero(),
        }
    }

    pub fn add(&self, o: &Q) -> Q {
        if let (Q::S(a, b), Q::S(c, d)) = (self, o) {
            if b == d {
                if let Some(n) = a.checked_add(*c) {
                    return Q::small(n, *b);
                }
            } else if let (Some(x), Some(y), Some(z)) = (a.checked_mul(*d), c.checked_mul(*b), b.checked_mul(*d))
                && let Some(n) = x.checked_add(y)
            {
                return Q::small(n, z);
            }
        }
        Q::norm(self.to_big().add(&o.to_big()))
    }

    /// `self - o`; callers guarantee `self >= o`.
    pub fn sub(&self, o: &Q) -> Q {
        if let (Q::S(a, b), Q::S(c, d)) = (self, o) {
            if b == d {
                return Q::small(a - c, *b);
            } else if let (Some(x), Some(y), Some(z)) = (a.checked_mul(*d), c.checked_mul(*b), b.checked_mul(*d)) {
                return Q::small(x - y, z);
            }
        }
        let r = self.to_big().sub(&o.to_big());
        debug_assert!(!r.is_negative());
        Q::norm(r)
    }

    pub fn mul(&self, o: &Q) -> Q {
        if let (Q::S(a, b), Q::S(c, d)) = (self, o) {
            // cross-reduce first to keep values small
            let g1 = gcd_u128(*a, *d).max(1);
            let g2 = gcd_u128(*c, *b).max(1);
            let (a, d) = (a / g1, d / g1);
            let (c, b) = (c / g2, b / g2);
            if let (Some(n), Some(m)) = (a.checked_mul(c), b.checked_mul(d)) {
                return Q::small(n, m);
            }
        }
        Q::norm(self.to_big().mul(&o.to_big()))
    }

    /// `self / o`; callers guarantee `o > 0`.
    pub fn div(&self, o: &Q) -> Q {
        match o {
            Q::S(c, d) => self.mul(&Q::S(*d, *c)),
            Q::B(b) => Q::norm(self.to_big().div(b)),
        }
    }

    pub fn min(self, o: Q) -> Q {
        if o.cmp(&self) == Ordering::Less { o } else { self }
    }

    /// `floor(a · self)` and the remainder as the numerator over the value's
    /// denominator (`a·n mod d`), for comparing fractional parts of values that
    /// share this multiplier. Returns `(floor, remainder, denominator)` as
    /// rationals when they do not fit.
    pub fn mul_int_floor_rem(&self, a: u128) -> FloorRem {
        if let Q::S(n, d) = self
            && let Some(p) = a.checked_mul(*n)
        {
            return FloorRem::S(p / d, p % d);
        }
        let b = self.to_big();
        let p = BigInt::from(a) * b.numer();
        let (q, r) = p.div_mod_floor(b.denom());
        FloorRem::B(q, r)
    }

    /// `round_half_even(a · self)`.
    pub fn mul_int_rhe(&self, a: u128) -> BigOrSmall {
        if let Q::S(n, d) = self
            && let Some(p) = a.checked_mul(*n)
        {
            return BigOrSmall::S(rhe_u128(p, *d));
        }
        let b = self.to_big();
        let p = BigRational::new(BigInt::from(a) * b.numer(), b.denom().clone());
        BigOrSmall::B(p.round_half_even())
    }
}

impl PartialEq for Q {
    fn eq(&self, o: &Q) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Q {}
impl PartialOrd for Q {
    fn partial_cmp(&self, o: &Q) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Q {
    fn cmp(&self, o: &Q) -> Ordering {
        if let (Q::S(a, b), Q::S(c, d)) = (self, o) {
            if b == d {
                return a.cmp(c);
            }
            if let (Some(x), Some(y)) = (a.checked_mul(*d), c.checked_mul(*b)) {
                return x.cmp(&y);
            }
        }
        self.to_big().cmp(&o.to_big())
    }
}

/// Result of [`Q::mul_int_floor_rem`].
#[derive(Clone, Debug)]
pub enum FloorRem {
    S(u128, u128),
    B(BigInt, BigInt),
}

impl FloorRem {
    /// The floor as `u128` (the callers' floors never exceed the amount they
    /// split, so they always fit).
    pub fn floor_u128(&self) -> u128 {
        match self {
            FloorRem::S(q, _) => *q,
            FloorRem::B(q, _) => q.to_u128().unwrap_or(u128::MAX),
        }
    }
    pub fn rem_big(&self) -> BigInt {
        match self {
            FloorRem::S(_, r) => BigInt::from(*r),
            FloorRem::B(_, r) => r.clone(),
        }
    }
}

/// An integer result that is small in practice.
#[derive(Clone, Debug)]
pub enum BigOrSmall {
    S(u128),
    B(BigInt),
}

impl BigOrSmall {
    pub fn to_u128(&self) -> u128 {
        match self {
            BigOrSmall::S(v) => *v,
            BigOrSmall::B(b) => b.to_u128().unwrap_or(u128::MAX),
        }
    }
}

/// Exact decimal text of a non-negative rational when it terminates within
/// `max_frac` digits, else `n/d`. For messages and explanations, not money.
pub fn fmt_ratio(r: &BigRational, max_frac: usize) -> String {
    let (n, d) = (r.numer().clone(), r.denom().clone());
    let neg = n.sign() == Sign::Minus;
    let n = if neg { -n } else { n };
    let (int, mut rem) = n.div_mod_floor(&d);
    let mut out = if neg { format!("-{int}") } else { int.to_string() };
    if rem.is_zero() {
        return out;
    }
    out.push('.');
    for _ in 0..max_frac {
        rem *= 10u32;
        let (digit, r2) = rem.div_mod_floor(&d);
        out.push_str(&digit.to_string());
        rem = r2;
        if rem.is_zero() {
            return out;
        }
    }
    format!("{}{}/{}", if neg { "-" } else { "" }, r.numer().magnitude(), r.denom())
}

/// A share as a percentage for people: `61.5%`, or `8/11` of 100% spelled
/// with enough digits (`72.727272…%`) when it does not terminate.
pub fn fmt_percent(share: &BigRational) -> String {
    let p = share.mul(&BigRational::from_int(100));
    let exact = fmt_ratio(&p, 20);
    if exact.contains('/') {
        let approx = p.mul(&BigRational::from_int(pow10(6))).floor();
        let s = format_minor_big(&approx, 6);
        format!("{}…%", s.trim_end_matches('0'))
    } else {
        format!("{exact}%")
    }
}

fn format_minor_big(v: &BigInt, decimals: usize) -> String {
    let s = v.magnitude().to_string();
    let s = if s.len() <= decimals {
        format!("{}{}", "0".repeat(decimals + 1 - s.len()), s)
    } else {
        s
    };
    let (i, f) = s.split_at(s.len() - decimals);
    format!("{i}.{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64, d: i64) -> BigRational {
        BigRational::new(BigInt::from(n), BigInt::from(d))
    }

    #[test]
    fn decimal_text() {
        assert_eq!(parse_minor_units("1234.5", 2), Ok(123450));
        assert_eq!(parse_minor_units(" 0.05 ", 2), Ok(5));
        assert_eq!(parse_minor_units("1234", 0), Ok(1234));
        assert_eq!(
            parse_minor_units("5.00", 0),
            Err(DecimalError::TooManyDecimals { allowed: 0, found: 2 })
        );
        assert_eq!(parse_minor_units("-5", 0), Err(DecimalError::Negative));
        for bad in [
            "+5", "1e5", "1,000", "1.2.3", ".5", "5.", "", " ", "0x10", "1 000", "١٢",
        ] {
            assert!(parse_minor_units(bad, 2).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_minor_units("9223372036854775807", 0), Ok(i64::MAX));
        assert_eq!(parse_minor_units("9223372036854775808", 0), Err(DecimalError::TooLarge));
        assert_eq!(
            parse_minor_units("92233720368547758.08", 2),
            Err(DecimalError::TooLarge)
        );
        assert_eq!(parse_minor_units("92233720368547758.07", 2), Ok(i64::MAX));
    }

    #[test]
    fn rationals() {
        assert_eq!(parse_rational("61.5", 18).unwrap(), r(123, 2));
        assert!(parse_rational("0.0000000000000000001", 18).is_err());
        assert_eq!(
            parse_rational("0.000000000000000001", 18).unwrap(),
            BigRational::new(1.into(), pow10(18))
        );
    }

    #[test]
    fn ratio_text() {
        assert_eq!(fmt_ratio(&r(123, 2), 10), "61.5");
        assert_eq!(fmt_ratio(&r(1, 3), 10), "1/3");
        assert_eq!(fmt_percent(&r(615, 1000)), "61.5%");
        assert_eq!(fmt_percent(&r(8, 11)), "72.727272…%");
        assert_eq!(fmt_percent(&r(1, 1)), "100%");
    }

    #[test]
    fn half_even() {
        assert_eq!(rhe_u128(5, 2), 2);
        assert_eq!(rhe_u128(7, 2), 4);
        assert_eq!(rhe_u128(1, 3), 0);
        assert_eq!(rhe_u128(2, 3), 1);
        assert_eq!(rhe_u128(u128::MAX, u128::MAX), 1);
        assert_eq!(r(5, 2).round_half_even(), BigInt::from(2));
        assert_eq!(r(-5, 2).round_half_even(), BigInt::from(-2));
        assert_eq!(r(-7, 2).round_half_even(), BigInt::from(-4));
        assert_eq!(r(-1, 3).round_half_even(), BigInt::from(0));
    }

    #[test]
    fn q_matches_big() {
        let big = Q::B(Box::new(r(3, 7)));
        let small = Q::S(3, 7);
        assert_eq!(big, small);
        let x = Q::S(u128::MAX / 3, 5).mul(&Q::S(7, 11));
        assert_eq!(
            x.to_big(),
            r(7, 55).mul(&BigRational::from_int(BigInt::from(u128::MAX / 3)))
        );
        assert_eq!(Q::S(1, 3).add(&Q::S(1, 6)), Q::S(1, 2));
        assert_eq!(Q::S(1, 2).sub(&Q::S(1, 6)), Q::S(1, 3));
    }
}
