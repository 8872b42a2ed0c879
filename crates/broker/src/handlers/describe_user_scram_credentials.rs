//! DescribeUserScramCredentials (key 50, KIP-554). rafka stores no SCRAM credentials, so this is
//! Kafka's answer over an empty credential store (its `ScramImage.describe`): describing every
//! user (null or empty list) finds nobody and succeeds with no results; each user named once gets
//! RESOURCE_NOT_FOUND, each named more than once DUPLICATE_RESOURCE, with Kafka's messages.

use rafka_protocol::kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult;
use rafka_protocol::kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use super::groups::sb;

pub fn handle(
    request: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let mut response = DescribeUserScramCredentialsResponse::default();
    let named = request.users.as_deref().unwrap_or_default();
    // One result per distinct user, in the order first named (Kafka's order is its hash map's).
    let mut users: Vec<(&StrBytes, bool)> = Vec::new();
    for user in named {
        match users.iter_mut().find(|(name, _)| **name == user.name) {
            Some((_, twice)) => *twice = true,
            None => users.push((&user.name, false)),
        }
    }
    for (name, twice) in users {
        let (code, message) = if twice {
            (
                ResponseError::DuplicateResource,
                "Cannot describe SCRAM credentials for the same user twice in a single request: ",
            )
        } else {
            (
                ResponseError::ResourceNotFound,
                "Attempt to describe a user credential that does not exist: ",
            )
        };
        let mut result = DescribeUserScramCredentialsResult::default();
        result.user = name.clone();
        result.error_code = code.code();
        result.error_message = Some(sb(format!("{message}{}", name.as_str())));
        response.results.push(result);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_protocol::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

    fn users(names: &[&str]) -> Option<Vec<UserName>> {
        Some(
            names
                .iter()
                .map(|n| UserName::default().with_name(sb(*n)))
                .collect(),
        )
    }

    #[test]
    fn describing_everyone_finds_nobody() {
        for users in [None, users(&[])] {
            let r = handle(&DescribeUserScramCredentialsRequest::default().with_users(users));
            assert_eq!(r.error_code, 0);
            assert!(r.results.is_empty());
        }
    }

    #[test]
    fn named_users_are_not_found_and_duplicates_are_refused() {
        let r = handle(
            &DescribeUserScramCredentialsRequest::default()
                .with_users(users(&["alice", "bob", "alice"])),
        );
        assert_eq!(r.error_code, 0);
        let got: Vec<(&str, i16, Option<&str>)> = r
            .results
            .iter()
            .map(|u| (u.user.as_str(), u.error_code, u.error_message.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "alice",
                    92,
                    Some(
                        "Cannot describe SCRAM credentials for the same user twice in a single \
                         request: alice"
                    )
                ),
                (
                    "bob",
                    91,
                    Some("Attempt to describe a user credential that does not exist: bob")
                ),
            ]
        );
        assert!(r.results.iter().all(|u| u.credential_infos.is_empty()));
    }
}
