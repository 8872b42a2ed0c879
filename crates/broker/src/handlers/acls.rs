//! What DescribeAcls, CreateAcls and DeleteAcls share. rafka has no authorizer, so all three
//! answer SECURITY_DISABLED, as Kafka's AclApis does when `authorizer.class.name` is unset; tools
//! that list ACLs (kafka-acls, UIs) then report "no authorizer" instead of losing the connection.

/// Kafka's message for CreateAcls and DeleteAcls: they raise `SecurityDisabledException` with it
/// and the request's error response carries it to every creation or filter.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Kafka's message for DescribeAcls, which builds its answer by hand with a sentence of its own.
pub const NO_AUTHORIZER_DESCRIBE: &str = "No Authorizer is configured on the broker";

/// One ACL binding or filter as the three requests carry it: resource type, pattern type,
/// operation and permission type codes.
pub struct AclCodes {
    pub resource_type: i8,
    pub pattern_type: i8,
    pub operation: i8,
    pub permission_type: i8,
}

/// Code 0 is UNKNOWN in each of Kafka's ACL enums. Kafka's request classes refuse a request
/// carrying it while parsing (before any authorizer is consulted), which closes the connection;
/// the caller does the same with the reason returned here.
pub fn refuse_unknown(api: &str, codes: impl IntoIterator<Item = AclCodes>) -> Result<(), String> {
    const UNKNOWN: i8 = 0;
    for c in codes {
        if [
            c.resource_type,
            c.pattern_type,
            c.operation,
            c.permission_type,
        ]
        .contains(&UNKNOWN)
        {
            return Err(format!(
                "{api} contains UNKNOWN elements (resource type {}, pattern type {}, operation {}, \
                 permission type {})",
                c.resource_type, c.pattern_type, c.operation, c.permission_type
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(resource_type: i8, pattern_type: i8, operation: i8, permission_type: i8) -> AclCodes {
        AclCodes {
            resource_type,
            pattern_type,
            operation,
            permission_type,
        }
    }

    #[test]
    fn unknown_codes_are_refused() {
        // ANY (1) everywhere is the widest filter a client sends; codes Kafka does not know
        // (99) are not UNKNOWN and pass, as in Kafka (its check compares with code 0 only).
        assert!(refuse_unknown("DescribeAcls", [codes(1, 1, 1, 1), codes(99, 3, 2, 3)]).is_ok());
        for bad in [
            codes(0, 1, 1, 1),
            codes(1, 0, 1, 1),
            codes(1, 1, 0, 1),
            codes(1, 1, 1, 0),
        ] {
            assert!(refuse_unknown("DeleteAcls", [codes(2, 3, 2, 3), bad]).is_err());
        }
        assert!(refuse_unknown("CreateAcls", []).is_ok());
    }
}
