//! The grant types Doorward serves, as one type: the name a client sends as `grant_type`,
//! the short name applications are registered with, and whether the grant needs a client
//! secret. Every list of grant types (registration, discovery, the applications page, the
//! token endpoint's dispatch) reads [`GrantType::ALL`], so a new grant is one variant here.

/// A grant type of `POST /oauth/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.1.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §4.3 (the resource owner's password).
    Password,
    /// RFC 8628 §3.4.
    DeviceCode,
}

impl GrantType {
    /// Every grant type, in the order discovery and the pages list them.
    pub const ALL: [GrantType; 5] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::DeviceCode,
    ];

    /// The `grant_type` a client sends, and discovery's `grant_types_supported` lists.
    pub fn wire_name(self) -> &'static str {
        match self {
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            other => other.registration_name(),
        }
    }

    /// The name an application is registered with (RFC 8628's URN is `device_code` here, as
    /// in GitLab).
    pub fn registration_name(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::DeviceCode => "device_code",
        }
    }

    /// Whether only a confidential client (one with a secret) may use it.
    pub fn needs_client_secret(self) -> bool {
        matches!(self, GrantType::ClientCredentials | GrantType::Password)
    }

    /// The grant a client's `grant_type` names, if Doorward serves it.
    pub fn from_wire(name: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.wire_name() == name)
    }

    /// The grant an application's registration names, if any.
    pub fn from_registration(name: &str) -> Option<GrantType> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.registration_name() == name)
    }
}

impl std::fmt::Display for GrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.registration_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_the_device_grant_differs_on_the_wire() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::from_wire(grant.wire_name()), Some(grant));
            assert_eq!(
                GrantType::from_registration(grant.registration_name()),
                Some(grant)
            );
            assert_eq!(
                grant.wire_name() == grant.registration_name(),
                grant != GrantType::DeviceCode
            );
        }
        assert_eq!(GrantType::from_wire("device_code"), None);
        assert_eq!(GrantType::from_wire("implicit"), None);
        assert_eq!(GrantType::from_registration(""), None);
    }

    #[test]
    fn only_client_credentials_and_password_need_a_secret() {
        let needing: Vec<_> = GrantType::ALL
            .into_iter()
            .filter(|g| g.needs_client_secret())
            .collect();
        assert_eq!(needing, [GrantType::ClientCredentials, GrantType::Password]);
    }
}
