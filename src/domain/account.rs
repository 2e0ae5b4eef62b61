//! Who acts: citizens and staff, their roles and their unit.

use std::fmt;

/// An account's primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The roles fixed for every part of the system. The three administrator
/// roles are kept apart on purpose: whoever runs the system does not manage
/// security settings or read the audit trail, and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Citizen,
    Dispatcher,
    Handler,
    UnitSupervisor,
    DistrictSupervisor,
    Auditor,
    SystemAdmin,
    SecurityAdmin,
    AuditAdmin,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Citizen,
        Role::Dispatcher,
        Role::Handler,
        Role::UnitSupervisor,
        Role::DistrictSupervisor,
        Role::Auditor,
        Role::SystemAdmin,
        Role::SecurityAdmin,
        Role::AuditAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Citizen => "citizen",
            Role::Dispatcher => "dispatcher",
            Role::Handler => "handler",
            Role::UnitSupervisor => "unit_supervisor",
            Role::DistrictSupervisor => "district_supervisor",
            Role::Auditor => "auditor",
            Role::SystemAdmin => "system_admin",
            Role::SecurityAdmin => "security_admin",
            Role::AuditAdmin => "audit_admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }

    pub fn is_staff(self) -> bool {
        self != Role::Citizen
    }
}

/// A signed-in caller, as established from a verified session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: AccountId,
    pub role: Role,
    /// The staff member's unit; `None` for citizens.
    pub unit_id: Option<String>,
    /// The sign-in session the token belongs to.
    pub session_id: String,
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub role: Role,
    pub unit_id: Option<String>,
    pub display_name: String,
}

/// An identity asserted by a sign-in provider, to be matched to an account.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    /// Which provider vouched for it, e.g. "dev".
    pub provider: &'static str,
    pub subject: String,
    pub role: Role,
    pub unit_id: Option<String>,
    pub display_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_parses_back_from_its_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
