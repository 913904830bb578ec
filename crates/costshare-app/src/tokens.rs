//! Access tokens of the server: created, listed and revoked on the command
//! line (`costshare token`), checked by `costshare serve` on every request.
//!
//! A token is 32 random bytes from the operating system (`getrandom`), shown
//! once as `cs_` and 64 hex digits. The ledger keeps only its SHA-256, its
//! name, role and optional party. Checking compares the SHA-256 of the token
//! presented with every live token's in constant time (`subtle`), so the
//! time taken says nothing about how much of a hash matched.

use crate::error::{AppError, UsageError};
use costshare_store::ledger::now_utc;
use costshare_store::{Ledger, TokenRow};
use subtle::ConstantTimeEq;

/// What a token may do. Each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads: reports, allocation, explanations, ceilings, history, verify, export.
    Viewer,
    /// Also records costs, corrections, voids and payments.
    Recorder,
    /// Also amends the agreement, closes periods and manages tokens.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "recorder" => Some(Role::Recorder),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Recorder => "recorder",
            Role::Admin => "admin",
        }
    }
}

/// A live token, as a request presents it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The party it is scoped to: it sees only the lines that party shares in.
    pub party: Option<String>,
}

/// A token just created: the secret is shown once and never stored.
pub struct Created {
    pub name: String,
    pub role: Role,
    pub party: Option<String>,
    pub token: String,
}

/// A name is 1–64 characters of letters, digits, `-`, `_`, `.` and `@`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn new_secret() -> Result<String, AppError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| AppError::Token(format!("no randomness from the operating system: {e}")))?;
    Ok(format!("cs_{}", costshare_store::journal::hex(&b)))
}

/// SHA-256 of a token, as stored.
pub fn hash(token: &str) -> String {
    costshare_store::journal::sha256_hex(token.as_bytes())
}

/// `token create`: a new token for `role` (scoped to `party` if given),
/// named `name` (default: the role and a number).
pub fn create(target: &str, role: Role, party: Option<&str>, name: Option<&str>) -> Result<Created, AppError> {
    if party.is_some() && role != Role::Viewer {
        return Err(UsageError::ScopedWriter.into());
    }
    let mut l = Ledger::open(target)?;
    if let Some(p) = party {
        let st = l.state()?;
        if !st.latest().agreement.parties.iter().any(|x| x.id == p) {
            return Err(UsageError::TokenParty(p.to_string()).into());
        }
    }
    let existing = l.backend_mut().tokens_read()?;
    let name = match name {
        Some(n) if !valid_name(n) => return Err(UsageError::TokenName(n.to_string()).into()),
        Some(n) => n.to_string(),
        None => (1..)
            .map(|k| format!("{}-{k}", role.as_str()))
            .find(|n| !existing.iter().any(|t| &t.name == n))
            .unwrap_or_default(),
    };
    let token = new_secret()?;
    let row = TokenRow {
        name: name.clone(),
        role: role.as_str().to_string(),
        party: party.map(str::to_string),
        hash: hash(&token),
        created_at: now_utc(),
        revoked_at: None,
    };
    if !l.backend_mut().token_insert(&row)? {
        return Err(AppError::Token(format!(
            "a token named `{name}` already exists in this ledger (names are never reused, even after revoking)"
        )));
    }
    Ok(Created {
        name,
        role,
        party: party.map(str::to_string),
        token,
    })
}

/// `token list`: every token, revoked ones included (never the secret).
pub fn list(target: &str) -> Result<Vec<TokenRow>, AppError> {
    let mut l = Ledger::open(target)?;
    Ok(l.backend_mut().tokens_read()?)
}

/// `token revoke`: the token stops working at once, in every server process.
pub fn revoke(target: &str, name: &str) -> Result<(), AppError> {
    let mut l = Ledger::open(target)?;
    if l.backend_mut().token_revoke(name, &now_utc())? {
        Ok(())
    } else if l.backend_mut().tokens_read()?.iter().any(|t| t.name == name) {
        Err(AppError::Token(format!("the token `{name}` was revoked before")))
    } else {
        Err(AppError::NoToken(name.to_string()))
    }
}

/// The live token whose hash matches `presented`, compared in constant
/// time against every live token (revoked ones are skipped).
pub fn authenticate(rows: &[TokenRow], presented: &str) -> Option<Principal> {
    let h = hash(presented);
    let mut found: Option<&TokenRow> = None;
    for t in rows {
        // every row is compared, whatever matched before
        let eq: bool = t.hash.as_bytes().ct_eq(h.as_bytes()).into();
        if eq && t.revoked_at.is_none() {
            found = Some(t);
        }
    }
    let t = found?;
    Some(Principal {
        name: t.name.clone(),
        role: Role::parse(&t.role)?,
        party: t.party.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, token: &str, revoked: bool) -> TokenRow {
        TokenRow {
            name: name.into(),
            role: "viewer".into(),
            party: Some("JP".into()),
            hash: hash(token),
            created_at: "t".into(),
            revoked_at: revoked.then(|| "t".into()),
        }
    }

    #[test]
    fn authenticates_live_tokens_only() {
        let rows = vec![row("a", "cs_1", false), row("b", "cs_2", true)];
        let p = authenticate(&rows, "cs_1").unwrap();
        assert_eq!(
            (p.name.as_str(), p.role, p.party.as_deref()),
            ("a", Role::Viewer, Some("JP"))
        );
        assert!(authenticate(&rows, "cs_2").is_none(), "revoked");
        assert!(authenticate(&rows, "cs_3").is_none());
        assert!(authenticate(&rows, "").is_none());
    }

    #[test]
    fn secrets_are_fresh_and_names_checked() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 67);
        assert!(valid_name("budget-office_1"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
        assert!(Role::Admin > Role::Recorder && Role::Recorder > Role::Viewer);
    }
}
