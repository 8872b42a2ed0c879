"""Admin APIs a broker without an authorizer, SCRAM credentials or quotas still answers (issue
18, item 4): DescribeAcls / CreateAcls / DeleteAcls answer SECURITY_DISABLED,
DescribeUserScramCredentials and DescribeClientQuotas answer empty, all as Apache Kafka answers
with no `authorizer.class.name`.
Tools and UIs that list ACLs, users or quotas then show "no authorizer" / nothing instead of losing
the connection.

kafka-python and confluent-kafka (librdkafka) drive the ACL and SCRAM APIs through their admin
clients; neither has a DescribeClientQuotas call, so that one goes over a raw socket with
kafka-python's message classes (txn_v2_wire.Wire), as do the version and bad-input checks.
"""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   ResourcePatternType, ResourceType as CkResourceType)
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         KafkaAdminClient, ResourcePattern, ResourcePatternFilter, ResourceType)
from kafka.errors import SecurityDisabledError
from kafka.protocol.admin import (DescribeAclsRequest, DescribeAclsResponse,
                                  DescribeClientQuotasRequest, DescribeClientQuotasResponse)
from kafka.protocol.metadata.api_versions import ApiVersionsRequest

import txn_v2_wire
from helpers import ck_admin
from txn_v2_wire import Wire

txn_v2_wire.RESPONSES[DescribeClientQuotasRequest] = DescribeClientQuotasResponse
txn_v2_wire.RESPONSES[DescribeAclsRequest] = DescribeAclsResponse

T = 30  # seconds per admin call

SECURITY_DISABLED = 54
INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35
RESOURCE_NOT_FOUND = 91

# Apache Kafka's own sentences (AclApis): DescribeAcls builds its answer by hand, CreateAcls and
# DeleteAcls carry SecurityDisabledException's message.
DESCRIBE_MESSAGE = "No Authorizer is configured on the broker"
ALTER_MESSAGE = "No Authorizer is configured."


@pytest.fixture
def kp_admin(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=T * 1000)
    yield admin
    admin.close()


def wire(broker) -> Wire:
    return Wire(broker.host, broker.port)


# ---- ApiVersions ---------------------------------------------------------------------------------

def test_api_versions_advertise_kafka_4_ranges(broker):
    w = wire(broker)
    try:
        r = w.call(ApiVersionsRequest, 3, client_software_name="t", client_software_version="1")
    finally:
        w.close()
    assert r.error_code == 0
    ranges = {k.api_key: (k.min_version, k.max_version) for k in r.api_keys}
    # Kafka 4.0 removed v0 of the three ACL APIs (KIP-896).
    assert ranges[29] == (1, 3)  # DescribeAcls
    assert ranges[30] == (1, 3)  # CreateAcls
    assert ranges[31] == (1, 3)  # DeleteAcls
    assert ranges[48] == (0, 1)  # DescribeClientQuotas
    assert ranges[50] == (0, 0)  # DescribeUserScramCredentials
    assert 51 not in ranges      # AlterUserScramCredentials: not offered


# ---- ACLs: kafka-python --------------------------------------------------------------------------

def test_kafka_python_describe_acls_security_disabled(kp_admin):
    f = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                  permission_type=ACLPermissionType.ANY,
                  resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                         ACLResourcePatternType.ANY))
    with pytest.raises(SecurityDisabledError) as e:
        kp_admin.describe_acls(f)
    assert e.value.errno == SECURITY_DISABLED
    assert DESCRIBE_MESSAGE in str(e.value)
    # The connection survives: the same client goes on with another admin call.
    assert kp_admin.describe_cluster()["controller_id"] is not None


def test_kafka_python_create_and_delete_acls_security_disabled(kp_admin):
    acls = [
        ACL(principal="User:alice", host="*", operation=ACLOperation.READ,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(ResourceType.TOPIC, "orders")),
        ACL(principal="User:bob", host="*", operation=ACLOperation.WRITE,
            permission_type=ACLPermissionType.DENY,
            resource_pattern=ResourcePattern(ResourceType.GROUP, "g",
                                             ACLResourcePatternType.PREFIXED)),
    ]
    created = kp_admin.create_acls(acls)
    assert created["succeeded"] == []
    assert created["failed"] == [SecurityDisabledError, SecurityDisabledError]

    filters = [
        ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                  permission_type=ACLPermissionType.ANY,
                  resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                         ACLResourcePatternType.ANY)),
        ACLFilter(principal="User:alice", host="*", operation=ACLOperation.READ,
                  permission_type=ACLPermissionType.ALLOW,
                  resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, "orders",
                                                         ACLResourcePatternType.LITERAL)),
    ]
    deleted = kp_admin.delete_acls(filters)
    assert [(f, matched, err) for f, matched, err in deleted] == \
        [(filters[0], [], SecurityDisabledError), (filters[1], [], SecurityDisabledError)]


# ---- ACLs: confluent-kafka (librdkafka) ----------------------------------------------------------

def ck_error(future) -> KafkaError:
    with pytest.raises(KafkaException) as e:
        future.result(T)
    return e.value.args[0]


def test_confluent_describe_create_delete_acls_security_disabled(broker):
    admin = ck_admin(broker)
    any_filter = AclBindingFilter(CkResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    # librdkafka (2.12 to 2.16) reads DescribeAcls' top-level error code and drops it, so against
    # Kafka without an authorizer, as here, the listing is empty and successful. Before rafka
    # answered DescribeAcls, the broker closed the connection and this raised.
    assert admin.describe_acls(any_filter, request_timeout=T).result(T) == []

    binding = AclBinding(CkResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.READ, AclPermissionType.ALLOW)
    futures = admin.create_acls([binding], request_timeout=T)
    err = ck_error(futures[binding])
    assert err.code() == KafkaError.SECURITY_DISABLED
    assert ALTER_MESSAGE in err.str()

    futures = admin.delete_acls([any_filter], request_timeout=T)
    err = ck_error(futures[any_filter])
    assert err.code() == KafkaError.SECURITY_DISABLED
    assert ALTER_MESSAGE in err.str()


# ---- SCRAM credentials ---------------------------------------------------------------------------

def test_confluent_describe_user_scram_credentials(broker):
    admin = ck_admin(broker)
    # Describing every user: nobody has credentials, and that is not an error.
    assert admin.describe_user_scram_credentials(request_timeout=T).result(T) == {}
    # A named user without credentials: RESOURCE_NOT_FOUND for that user.
    futures = admin.describe_user_scram_credentials(["alice", "bob"], request_timeout=T)
    assert set(futures) == {"alice", "bob"}
    for user, f in futures.items():
        err = ck_error(f)
        assert err.code() == KafkaError.RESOURCE_NOT_FOUND, (user, err)
        assert f"does not exist: {user}" in err.str()


def test_kafka_python_describe_user_scram_credentials(kp_admin):
    assert kp_admin.describe_user_scram_credentials() == {}
    assert kp_admin.describe_user_scram_credentials([]) == {}
    got = kp_admin.describe_user_scram_credentials(["alice"])
    assert got == {"alice": {
        "error": "Attempt to describe a user credential that does not exist: alice",
        "credential_infos": []}}


# ---- client quotas (raw requests) ----------------------------------------------------------------

Component = DescribeClientQuotasRequest.ComponentData


@pytest.mark.parametrize("version", [0, 1])
def test_describe_client_quotas(broker, version):
    w = wire(broker)
    try:
        def describe(components, strict=False):
            return w.call(DescribeClientQuotasRequest, version, components=components,
                          strict=strict)

        # Nothing stored: every valid filter matches nothing.
        for components in [
            [],
            [Component(entity_type="user", match_type=0, match="alice")],
            [Component(entity_type="user", match_type=1, match=None),
             Component(entity_type="client-id", match_type=2, match=None)],
        ]:
            r = describe(components, strict=True)
            assert (r.error_code, r.entries) == (0, []), components

        # Bad filters get Kafka's errors, messages and null entries; the connection goes on.
        r = describe([Component(entity_type="user", match_type=2, match=None),
                      Component(entity_type="user", match_type=0, match="bob")])
        assert (r.error_code, r.error_message, r.entries) == (
            INVALID_REQUEST, "Entity type user cannot appear more than once in the filter.", None)
        r = describe([Component(entity_type="user", match_type=7, match=None)])
        assert (r.error_code, r.error_message) == (INVALID_REQUEST, "Unknown match type 7")
        r = describe([Component(entity_type="user", match_type=0, match=None)])
        assert (r.error_code, r.error_message) == (
            INVALID_REQUEST, "Request specified MATCH_TYPE_EXACT, but set match string to null.")
        r = describe([Component(entity_type="ip", match_type=2, match=None),
                      Component(entity_type="user", match_type=2, match=None)])
        assert r.error_code == INVALID_REQUEST
        r = describe([Component(entity_type="topic", match_type=2, match=None)])
        assert (r.error_code, r.error_message) == (UNSUPPORTED_VERSION,
                                                   "Unsupported entity type topic")
    finally:
        w.close()


# ---- bad ACL filters -----------------------------------------------------------------------------

def test_unknown_acl_codes_close_the_connection_as_kafka_does(broker, kp_admin):
    """Code 0 (UNKNOWN) in an ACL filter fails Kafka's request parsing, which closes the
    connection; a valid filter on the next connection is answered as before."""
    fields = dict(resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
                  principal_filter=None, host_filter=None, operation=1, permission_type=1)
    for version in (1, 2, 3):
        w = wire(broker)
        try:
            r = w.call(DescribeAclsRequest, version, **fields)
            assert (r.error_code, r.error_message, r.resources) == \
                (SECURITY_DISABLED, DESCRIBE_MESSAGE, [])
            with pytest.raises((ConnectionError, OSError)):
                w.call(DescribeAclsRequest, version, **{**fields, "operation": 0})
        finally:
            w.close()
    assert kp_admin.describe_cluster()["controller_id"] is not None
