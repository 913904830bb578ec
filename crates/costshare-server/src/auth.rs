//! Who is asking: the bearer token of a request checked against the
//! ledger's tokens (read on every request, so a revocation takes effect at
//! once in every process), what each role may do, and repeated failures
//! from one address slowed down.

use crate::error::ApiError;
use axum::http::{HeaderMap, StatusCode, header};
use costshare_app::tokens::{self, Principal, Role};
use costshare_store::TokenRow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The token of an `Authorization: Bearer TOKEN` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The principal of a request, or 401.
pub fn check(rows: &[TokenRow], headers: &HeaderMap) -> Result<Principal, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this needs `Authorization: Bearer TOKEN` (create one with `costshare token create LEDGER --role viewer`)",
        ));
    };
    tokens::authenticate(rows, token).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not valid for this ledger (unknown or revoked)",
        )
    })
}

/// 403 unless `p` has at least `need`.
pub fn require(p: &Principal, need: Role, what: &str) -> Result<(), ApiError> {
    // a party-scoped token only reads (`token create` refuses others; this
    // holds even for a tokens table edited by hand)
    if need > Role::Viewer
        && let Some(party) = &p.party
    {
        return Err(ApiError::forbidden(format!(
            "{what} is a write; the token `{}` is scoped to {party} and only reads",
            p.name
        )));
    }
    if p.role >= need {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{what} needs the {} role; the token `{}` is a {}",
            need.as_str(),
            p.name,
            p.role.as_str()
        )))
    }
}

/// 403 for a party-scoped token on a request that would show other
/// parties' lines.
pub fn unscoped(p: &Principal, what: &str) -> Result<(), ApiError> {
    match &p.party {
        None => Ok(()),
        Some(party) => Err(ApiError::forbidden(format!(
            "{what} covers every party's lines; the token `{}` is scoped to {party}",
            p.name
        ))),
    }
}

/// Failed authentications per address: after [`FREE`] failures within
/// [`WINDOW`], each further answer to that address waits, doubling from
/// 100 ms up to [`MAX_DELAY`].
#[derive(Default)]
pub struct Failures {
    by_addr: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

pub const FREE: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const MAX_DELAY: Duration = Duration::from_secs(5);

impl Failures {
    /// How long to wait before answering `ip` (zero when it has not failed
    /// more than [`FREE`] times within [`WINDOW`]).
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let Ok(map) = self.by_addr.lock() else {
            return Duration::ZERO;
        };
        match map.get(&ip) {
            Some((n, since)) if since.elapsed() < WINDOW && *n > FREE => {
                let k = (*n - FREE).min(10);
                Duration::from_millis(100u64 << (k - 1)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }
    /// Count a failure of `ip`.
    pub fn fail(&self, ip: IpAddr) {
        if let Ok(mut map) = self.by_addr.lock() {
            if map.len() > 100_000 {
                map.retain(|_, (_, since)| since.elapsed() < WINDOW);
            }
            let e = map.entry(ip).or_insert((0, Instant::now()));
            if e.1.elapsed() >= WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_slow_down_after_five() {
        let f = Failures::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..FREE {
            f.fail(ip);
        }
        assert_eq!(f.delay(ip), Duration::ZERO);
        f.fail(ip);
        assert_eq!(f.delay(ip), Duration::from_millis(100));
        f.fail(ip);
        assert_eq!(f.delay(ip), Duration::from_millis(200));
        for _ in 0..20 {
            f.fail(ip);
        }
        assert_eq!(f.delay(ip), MAX_DELAY);
        assert_eq!(f.delay("127.0.0.8".parse().unwrap()), Duration::ZERO);
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer cs_abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("cs_abc"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
