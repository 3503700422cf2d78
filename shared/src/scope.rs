//! OAuth scopes (RFC 6749 §3.3) with GitLab's names. A `ScopeSet` is parsed once at the edge
//! and is valid from then on: every scope known, no duplicates, order kept for display.

use std::fmt;

/// The scopes this server knows: GitLab's names, so that GitLab's clients work unchanged.
pub const KNOWN_SCOPES: &[&str] = &[
    "api",
    "read_api",
    "read_user",
    "create_runner",
    "manage_runner",
    "k8s_proxy",
    "self_rotate",
    "read_repository",
    "write_repository",
    "read_registry",
    "write_registry",
    "read_virtual_registry",
    "write_virtual_registry",
    "read_observability",
    "write_observability",
    "ai_features",
    "ai_workflows",
    "sudo",
    "admin_mode",
    "read_service_ping",
    "openid",
    "profile",
    "email",
];

/// The scope granted when a request names none (GitLab's `DEFAULT_SCOPES`).
pub const DEFAULT_SCOPE: &str = "api";

/// Longest `scope` parameter accepted (SEC-DS-01).
pub const MAX_SCOPE_PARAM_LEN: usize = 1024;

/// One known scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(&'static str);

impl Scope {
    /// Parses a single scope name; only known names are scopes.
    pub fn parse(name: &str) -> Result<Self, ScopeError> {
        KNOWN_SCOPES
            .iter()
            .find(|known| **known == name)
            .map(|known| Scope(known))
            .ok_or_else(|| ScopeError::Unknown(name.chars().take(64).collect()))
    }

    /// The scope's name.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A name that is not one of [`KNOWN_SCOPES`].
    #[error("the scope \"{0}\" is unknown")]
    Unknown(String),
    /// Characters outside RFC 6749 §3.3's scope-token, or separators other than spaces.
    #[error("the scope parameter is malformed")]
    Malformed,
    /// Longer than [`MAX_SCOPE_PARAM_LEN`].
    #[error("the scope parameter is too long")]
    TooLong,
}

/// A set of known scopes, in the order first given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    /// Parses a space-delimited scope parameter (RFC 6749 §3.3). Runs of spaces are
    /// tolerated; tabs, newlines and other characters outside scope-token are not.
    pub fn parse(value: &str) -> Result<Self, ScopeError> {
        if value.len() > MAX_SCOPE_PARAM_LEN {
            return Err(ScopeError::TooLong);
        }
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by %x20.
        let valid = |b: u8| {
            b == b' ' || b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
        };
        if !value.bytes().all(valid) {
            return Err(ScopeError::Malformed);
        }
        let mut scopes = Vec::new();
        for name in value.split(' ').filter(|s| !s.is_empty()) {
            let scope = Scope::parse(name)?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(Self(scopes))
    }

    /// The scope granted when a request names none ([`DEFAULT_SCOPE`]).
    pub fn default_scope() -> Self {
        Self(vec![Scope(DEFAULT_SCOPE)])
    }

    /// Builds a set from already-known scopes.
    pub fn from_scopes(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut set = Self::default();
        for scope in scopes {
            set.insert(scope);
        }
        set
    }

    /// Adds a scope unless present.
    pub fn insert(&mut self, scope: Scope) {
        if !self.0.contains(&scope) {
            self.0.push(scope);
        }
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// Whether the set contains a scope with this name.
    pub fn contains_name(&self, name: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == name)
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().all(|s| other.contains(*s))
    }

    /// The scopes of `self` that are also in `other`, in `self`'s order.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        ScopeSet(
            self.0
                .iter()
                .copied()
                .filter(|s| other.contains(*s))
                .collect(),
        )
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

impl fmt::Display for ScopeSet {
    /// The space-delimited form used in the `scope` parameter and token responses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scope_is_a_known_scope() {
        assert_eq!(
            ScopeSet::default_scope(),
            ScopeSet::parse(DEFAULT_SCOPE).unwrap()
        );
    }
    use proptest::prelude::*;

    #[test]
    fn parses_known_scopes_in_order_without_duplicates() {
        let set = ScopeSet::parse("read_user  api read_user").unwrap();
        assert_eq!(set.to_string(), "read_user api");
    }

    #[test]
    fn refuses_unknown_and_malformed_scopes() {
        assert_eq!(
            ScopeSet::parse("api bogus"),
            Err(ScopeError::Unknown("bogus".into()))
        );
        assert_eq!(
            ScopeSet::parse("api\tread_user"),
            Err(ScopeError::Malformed)
        );
        assert_eq!(ScopeSet::parse("api\"x"), Err(ScopeError::Malformed));
        assert_eq!(ScopeSet::parse(&"a".repeat(2000)), Err(ScopeError::TooLong));
    }

    #[test]
    fn subset_and_intersection() {
        let app = ScopeSet::parse("api read_user").unwrap();
        assert!(ScopeSet::parse("read_user").unwrap().is_subset_of(&app));
        assert!(!ScopeSet::parse("sudo").unwrap().is_subset_of(&app));
        assert_eq!(
            ScopeSet::parse("sudo api")
                .unwrap()
                .intersection(&app)
                .to_string(),
            "api"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(input in ".{0,200}") {
            if let Ok(set) = ScopeSet::parse(&input) {
                prop_assert_eq!(ScopeSet::parse(&set.to_string()), Ok(set));
            }
        }
    }
}
