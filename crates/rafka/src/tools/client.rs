//! What the command-line tools add to the `rafka-client` crate: bootstrap parsing, a connection
//! per broker with the tool's request timeout and the broker's versions asked on connect
//! ([`Conn`], over [`rafka_client::Connection`]), the version caps of the tools, metadata and
//! coordinator lookups over the cluster ([`Cluster`]), and Kafka's error texts. Works against any
//! Kafka broker: nothing here assumes rafka.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::{Request, StrBytes, VersionRange};
use rafka_client::{ClientError, ConnectOptions, Connection, PeerVersions};

/// Largest response frame accepted (a fetch response is bounded by the fetch sizes we ask for).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Settings shared by all tools (Kafka's client configs, as far as they apply).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub bootstrap: Vec<String>,
    pub client_id: String,
    pub request_timeout: Duration,
}

impl ClientConfig {
    /// From `bootstrap.servers`-style text and the tool's properties.
    pub fn new(
        bootstrap: &str,
        client_id: &str,
        request_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let servers = parse_bootstrap(bootstrap)?;
        Ok(ClientConfig {
            bootstrap: servers,
            client_id: client_id.to_string(),
            request_timeout,
        })
    }
}

/// Splits `host:port,host:port`; every entry needs a port, as Kafka's client checks.
pub fn parse_bootstrap(text: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for s in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("Invalid url in bootstrap.servers: {s}"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            bail!("Invalid url in bootstrap.servers: {s}");
        }
        out.push(s.to_string());
    }
    if out.is_empty() {
        bail!("No resolvable bootstrap urls given in bootstrap.servers");
    }
    Ok(out)
}

/// The client versions each API is used at at most. Capped below kafka-protocol's newest where a
/// newer version changes what we would have to fill in (topic ids instead of names in Produce 13,
/// Fetch 13+, OffsetCommit/OffsetFetch 10), so we always speak versions we fill completely.
pub fn client_max_version(key: ApiKey) -> i16 {
    let max = key.valid_versions().max;
    match key {
        ApiKey::Produce => max.min(12),
        ApiKey::Fetch => max.min(12),
        ApiKey::OffsetCommit => max.min(9),
        // v8+ batches groups; the tools ask for one group at a time.
        ApiKey::OffsetFetch => max.min(7),
        _ => max,
    }
}

/// One connection to one broker: a [`rafka_client::Connection`] with the tool's timeout and
/// the broker's api versions, asked on connect.
pub struct Conn {
    conn: Connection,
    pub addr: String,
    /// The broker's supported versions, from ApiVersions.
    pub broker_versions: PeerVersions,
    timeout: Duration,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("addr", &self.addr).finish()
    }
}

impl Conn {
    /// Connects and negotiates versions (ApiVersions v3, falling back to v0 as KIP-511 says).
    pub async fn connect(addr: &str, cfg: &ClientConfig) -> anyhow::Result<Conn> {
        let options = ConnectOptions {
            client_id: cfg.client_id.clone(),
            connect_timeout: cfg.request_timeout,
            frame_bytes_max: MAX_RESPONSE_BYTES,
            ..ConnectOptions::default()
        };
        let conn = Connection::connect(addr, &options)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let broker_versions = conn
            .peer_versions(cfg.request_timeout)
            .await
            .map_err(|e| anyhow!("{e}"))?
            .clone();
        Ok(Conn {
            conn,
            addr: addr.to_string(),
            broker_versions,
            timeout: cfg.request_timeout,
        })
    }

    /// The version to use for request `R`: the newest both sides know, within the tool's caps
    /// ([`client_max_version`]).
    pub fn version_for(&self, key: ApiKey) -> anyhow::Result<i16> {
        let ours = key.valid_versions();
        let ours_max = client_max_version(key);
        let (bmin, bmax) = self
            .broker_versions
            .range(key as i16)
            .ok_or_else(|| anyhow!("The broker does not support {key:?}"))?;
        self.broker_versions
            .pick(key as i16, VersionRange { min: ours.min, max: ours_max })
            .ok_or_else(|| anyhow!("The broker does not support {key:?} at a version this tool knows (broker {bmin}-{bmax}, tool {}-{ours_max})", ours.min))
    }

    /// Sends `req` at the negotiated version; returns the response and the version used.
    pub async fn send<R: Request>(&mut self, req: &R) -> anyhow::Result<(R::Response, i16)> {
        let key = ApiKey::try_from(R::KEY).map_err(|()| anyhow!("unknown api key {}", R::KEY))?;
        let v = self.version_for(key)?;
        let resp = self.send_at(req, v).await?;
        Ok((resp, v))
    }

    /// Sends `req` at `version`, with the connection's timeout.
    pub async fn send_at<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> anyhow::Result<R::Response> {
        let timeout = self.timeout;
        self.send_at_timeout(req, version, timeout).await
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub async fn send_no_response<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> anyhow::Result<()> {
        self.conn
            .send_no_response(req, version, self.timeout)
            .await
            .map_err(|e| anyhow!("{e}"))
    }

    /// Sends `req` at `version`; fails if no answer within `timeout`.
    pub async fn send_at_timeout<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> anyhow::Result<R::Response> {
        self.conn
            .send(req, version, timeout)
            .await
            .map_err(|e| match e {
                ClientError::Timeout { .. } => {
                    let key = ApiKey::try_from(R::KEY)
                        .map_or_else(|()| format!("api key {}", R::KEY), |k| format!("{k:?}"));
                    anyhow!(
                        "Timed out waiting for a response to {key} from {} after {} ms",
                        self.addr,
                        timeout.as_millis()
                    )
                }
                other => anyhow!("{other}"),
            })
    }
}

/// Kafka's message for an error code: the broker's message when it sent one, else the code's
/// standard description.
pub fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    if code == 0 {
        return "no error".to_string();
    }
    error_description(code)
        .map(str::to_string)
        .unwrap_or_else(|| format!("Unexpected error code {code}"))
}

/// Kafka's standard text for an error code (its `Errors` enum's default messages), used when the
/// broker sent no message of its own.
fn error_description(code: i16) -> Option<&'static str> {
    Some(match code {
        -1 => "The server experienced an unexpected error when processing the request.",
        1 => "The requested offset is not within the range of offsets maintained by the server.",
        2 => "This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt.",
        3 => "This server does not host this topic-partition.",
        4 => "The requested fetch size is invalid.",
        5 => "There is no leader for this topic-partition as we are in the middle of a leadership election.",
        6 => "For requests intended only for the leader, this error indicates that the broker is not the current leader. For requests intended for any replica, this error indicates that the broker is not a replica of the topic partition.",
        7 => "The request timed out.",
        8 => "The broker is not available.",
        9 => "The replica is not available for the requested topic-partition. Produce/Fetch requests and other requests intended only for the leader or follower return NOT_LEADER_OR_FOLLOWER if the broker is not a replica of the topic-partition.",
        10 => "The request included a message larger than the max message size the server will accept.",
        11 => "The controller moved to another broker.",
        12 => "The metadata field of the offset request was too large.",
        13 => "The server disconnected before a response was received.",
        14 => "The coordinator is loading and hence can't process requests.",
        15 => "The coordinator is not available.",
        16 => "This is not the correct coordinator.",
        17 => "The request attempted to perform an operation on an invalid topic.",
        18 => "The request included message batch larger than the configured segment size on the server.",
        19 => "Messages are rejected since there are fewer in-sync replicas than required.",
        20 => "Messages are written to the log, but to fewer in-sync replicas than required.",
        21 => "Produce request specified an invalid value for required acks.",
        22 => "Specified group generation id is not valid.",
        23 => "The group member's supported protocols are incompatible with those of existing members or first group member tried to join with empty protocol type or empty protocol list.",
        24 => "The configured groupId is invalid.",
        25 => "The coordinator is not aware of this member.",
        26 => "The session timeout is not within the range allowed by the broker (as configured by group.min.session.timeout.ms and group.max.session.timeout.ms).",
        27 => "The group is rebalancing, so a rejoin is needed.",
        28 => "The committing offset data size is not valid.",
        29 => "Topic authorization failed.",
        30 => "Group authorization failed.",
        31 => "Cluster authorization failed.",
        32 => "The timestamp of the message is out of acceptable range.",
        33 => "The broker does not support the requested SASL mechanism.",
        34 => "Request is not valid given the current SASL state.",
        35 => "The version of API is not supported.",
        36 => "Topic with this name already exists.",
        37 => "Number of partitions is below 1.",
        38 => "Replication factor is below 1 or larger than the number of available brokers.",
        39 => "Replica assignment is invalid.",
        40 => "Configuration is invalid.",
        41 => "This is not the correct controller for this cluster.",
        42 => "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker. See the broker logs for more details.",
        43 => "The message format version on the broker does not support the request.",
        44 => "Request parameters do not satisfy the configured policy.",
        45 => "The broker received an out of order sequence number.",
        46 => "The broker received a duplicate sequence number.",
        47 => "Producer attempted to produce with an old epoch.",
        48 => "The producer attempted a transactional operation in an invalid state.",
        49 => "The producer attempted to use a producer id which is not currently assigned to its transactional id.",
        50 => "The transaction timeout is larger than the maximum value allowed by the broker (as configured by transaction.max.timeout.ms).",
        51 => "The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing.",
        52 => "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer the current coordinator for a given producer.",
        53 => "Transactional Id authorization failed.",
        54 => "Security features are disabled.",
        55 => "The broker did not attempt to execute this operation. This may happen for batched RPCs where some operations in the batch failed, causing the broker to respond without trying the rest.",
        56 => "Disk error when trying to access log file on the disk.",
        57 => "The user-specified log directory is not found in the broker config.",
        58 => "SASL Authentication failed.",
        59 => "This exception is raised by the broker if it could not locate the producer metadata associated with the producerId in question. This could happen if, for instance, the producer's records were deleted because their retention time had elapsed. Once the last records of the producerId are removed, the producer's metadata is removed from the broker, and future appends by the producer will return this exception.",
        60 => "A partition reassignment is in progress.",
        61 => "Delegation Token feature is not enabled.",
        62 => "Delegation Token is not found on server.",
        63 => "Specified Principal is not valid Owner/Renewer.",
        64 => "Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels and on delegation token authenticated channels.",
        65 => "Delegation Token authorization failed.",
        66 => "Delegation Token is expired.",
        67 => "Supplied principalType is not supported.",
        68 => "The group is not empty.",
        69 => "The group id does not exist.",
        70 => "The fetch session ID was not found.",
        71 => "The fetch session epoch is invalid.",
        72 => "There is no listener on the leader broker that matches the listener on which metadata request was processed.",
        73 => "Topic deletion is disabled.",
        74 => "The leader epoch in the request is older than the epoch on the broker.",
        75 => "The leader epoch in the request is newer than the epoch on the broker.",
        76 => "The requesting client does not support the compression type of given partition.",
        77 => "Broker epoch has changed.",
        78 => "The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing.",
        79 => "The group member needs to have a valid member id before actually entering a consumer group.",
        80 => "The preferred leader was not available.",
        81 => "The consumer group has reached its max size.",
        82 => "The broker rejected this static consumer since another consumer with the same group.instance.id has registered with a different member.id.",
        83 => "Eligible topic partition leaders are not available.",
        84 => "Leader election not needed for topic partition.",
        85 => "No partition reassignment is in progress.",
        86 => "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it.",
        87 => "This record has failed the validation on broker and hence will be rejected.",
        88 => "There are unstable offsets that need to be cleared.",
        89 => "The throttling quota has been exceeded.",
        90 => "There is a newer producer with the same transactionalId which fences the current one.",
        91 => "A request illegally referred to a resource that does not exist.",
        92 => "A request illegally referred to the same resource twice.",
        93 => "Requested credential would not meet criteria for acceptability.",
        94 => "Indicates that the either the sender or recipient of a voter-only request is not one of the expected voters",
        95 => "The given update version was invalid.",
        96 => "Unable to update finalized features due to an unexpected server error.",
        97 => "Request principal deserialization failed during forwarding. This indicates an internal error on the broker cluster security setup.",
        98 => "Requested snapshot was not found",
        99 => "Requested position is not greater than or equal to zero, and less than the size of the snapshot.",
        100 => "This server does not host this topic ID.",
        101 => "This broker ID is already in use.",
        102 => "The given broker ID was not registered.",
        103 => "The log's topic ID did not match the topic ID in the request",
        104 => "The clusterId in the request does not match that found on the server",
        105 => "The transactionalId could not be found",
        106 => "The fetch session encountered inconsistent topic ID usage",
        107 => "The new ISR contains at least one ineligible replica.",
        108 => "The AlterPartition request successfully updated the partition state but the leader has changed.",
        109 => "The requested offset is moved to tiered storage.",
        110 => "The member epoch is fenced by the group coordinator. The member must abandon all its partitions and rejoin.",
        111 => "The instance ID is still used by another member in the consumer group. That member must leave first.",
        112 => "The assignor or its version range is not supported by the consumer group.",
        113 => "The member epoch is stale. The member must retry after receiving its updated member epoch via the ConsumerGroupHeartbeat API.",
        114 => "The request was sent to an endpoint of the wrong type.",
        115 => "This endpoint type is not supported yet.",
        116 => "This controller ID is not known.",
        117 => "Client sent a push telemetry request with an invalid or outdated subscription ID.",
        118 => "Client sent a push telemetry request larger than the maximum size the broker will accept.",
        119 => "The controller has considered the broker registration to be invalid.",
        120 => "The server encountered an error with the transaction. The client can abort the transaction to continue using this transactional ID.",
        121 => "The record state is invalid. The acknowledgement of delivery could not be completed.",
        122 => "The share session was not found.",
        123 => "The share session epoch is invalid.",
        124 => "The share coordinator rejected the request because the share-group state epoch did not match.",
        125 => "The voter key doesn't match the receiving replica's key.",
        126 => "The voter is already part of the set of voters.",
        127 => "The voter is not part of the set of voters.",
        128 => "The regular expression is not valid.",
        129 => "Client metadata is stale, client should rebootstrap to obtain new metadata.",
        130 => "The supplied topology is invalid.",
        131 => "The supplied topology epoch is invalid.",
        132 => "The supplied topology epoch is outdated.",
        133 => "The limit of share sessions has been reached.",
        _ => return None,
    })
}

/// A broker from Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Connections to a cluster: the bootstrap connection plus one per broker id on demand.
pub struct Cluster {
    pub cfg: ClientConfig,
    bootstrap: Conn,
    by_id: HashMap<i32, Conn>,
    pub brokers: HashMap<i32, BrokerInfo>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.bootstrap.addr)
            .finish()
    }
}

impl Cluster {
    /// Connects to the first bootstrap server that answers, retrying until the request timeout
    /// has passed (a broker that is still starting is waited for, a dead one is not waited for
    /// forever).
    pub async fn connect(cfg: ClientConfig) -> anyhow::Result<Cluster> {
        let deadline = Instant::now() + cfg.request_timeout;
        let mut last_error = None;
        loop {
            for addr in &cfg.bootstrap {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut attempt_cfg = cfg.clone();
                attempt_cfg.request_timeout = left.max(Duration::from_millis(100));
                match Conn::connect(addr, &attempt_cfg).await {
                    Ok(mut c) => {
                        c.timeout = cfg.request_timeout;
                        return Ok(Cluster {
                            cfg,
                            bootstrap: c,
                            by_id: HashMap::new(),
                            brokers: HashMap::new(),
                        });
                    }
                    Err(e) => last_error = Some(format!("{e:#}")),
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "Timed out after {} ms waiting to connect to the bootstrap servers {}: {}",
                    cfg.request_timeout.as_millis(),
                    cfg.bootstrap.join(","),
                    last_error.unwrap_or_default()
                );
            }
            let pause =
                Duration::from_millis(500).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(pause).await;
        }
    }

    pub fn any(&mut self) -> &mut Conn {
        &mut self.bootstrap
    }

    /// Metadata for `topics` (None: all topics); remembers the brokers.
    pub async fn metadata(
        &mut self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> anyhow::Result<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(kafka_protocol::messages::TopicName(
                                StrBytes::from_string(t.clone()),
                            )))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(allow_auto_create);
        let (resp, _) = self.bootstrap.send(&req).await?;
        for b in &resp.brokers {
            self.brokers.insert(
                b.node_id.0,
                BrokerInfo {
                    id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                },
            );
        }
        Ok(resp)
    }

    /// The connection to broker `id` (opened on first use; Metadata must have named it).
    pub async fn broker(&mut self, id: i32) -> anyhow::Result<&mut Conn> {
        if !self.by_id.contains_key(&id) {
            if !self.brokers.contains_key(&id) {
                self.metadata(Some(&[]), false).await?;
            }
            let info = self
                .brokers
                .get(&id)
                .ok_or_else(|| anyhow!("broker {id} is not in the cluster metadata"))?;
            let conn = Conn::connect(&info.addr(), &self.cfg).await?;
            self.by_id.insert(id, conn);
        }
        self.by_id
            .get_mut(&id)
            .ok_or_else(|| anyhow!("broker {id} connection lost"))
    }

    /// Forgets the connection to `id` (after an I/O error), so the next use reconnects.
    pub fn drop_broker(&mut self, id: i32) {
        self.by_id.remove(&id);
    }

    /// The group coordinator's broker id (FindCoordinator, retried while the coordinator loads).
    pub async fn find_coordinator(&mut self, group: &str) -> anyhow::Result<i32> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        loop {
            let v = self.bootstrap.version_for(ApiKey::FindCoordinator)?;
            let mut req = FindCoordinatorRequest::default().with_key_type(0);
            if v >= 4 {
                req = req.with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
            } else {
                req = req.with_key(StrBytes::from_string(group.to_string()));
            }
            let resp = self.bootstrap.send_at(&req, v).await?;
            let (code, msg, node, host, port) = if v >= 4 {
                let c = resp
                    .coordinators
                    .first()
                    .ok_or_else(|| anyhow!("empty FindCoordinator response"))?;
                (
                    c.error_code,
                    c.error_message.clone(),
                    c.node_id,
                    c.host.clone(),
                    c.port,
                )
            } else {
                (
                    resp.error_code,
                    resp.error_message.clone(),
                    resp.node_id,
                    resp.host.clone(),
                    resp.port,
                )
            };
            if code == 0 {
                self.brokers.entry(node.0).or_insert(BrokerInfo {
                    id: node.0,
                    host: host.to_string(),
                    port,
                    rack: None,
                });
                return Ok(node.0);
            }
            // COORDINATOR_NOT_AVAILABLE (15) and COORDINATOR_LOAD_IN_PROGRESS (14) pass.
            if (code == 14 || code == 15) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            bail!("{}", error_text(code, msg.as_ref()));
        }
    }
}

/// `BrokerId` helper.
pub fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

/// Kafka's text form of a Uuid: 16 bytes in URL-safe base64 without padding.
pub fn uuid_text(u: &uuid::Uuid) -> String {
    rafka_storage::uuid_to_base64(u.as_bytes())
}

impl Cluster {
    /// The connection admin requests that Kafka routes to the controller go to (CreateTopics,
    /// DeleteTopics, CreatePartitions): Metadata's controller id, or the bootstrap broker when
    /// the controller is not reachable as a broker.
    pub async fn controller(&mut self) -> anyhow::Result<&mut Conn> {
        let md = self.metadata(Some(&[]), false).await?;
        let id = md.controller_id.0;
        if id >= 0 && self.brokers.contains_key(&id) && self.broker(id).await.is_ok() {
            return self.broker(id).await;
        }
        Ok(&mut self.bootstrap)
    }
}

impl Cluster {
    /// Each partition of `topic` with its leader, waiting (Metadata every 100 ms, up to
    /// `max_wait`) while the topic is being created or has no leaders yet, as Kafka's clients
    /// wait for metadata.
    pub async fn partition_leaders(
        &mut self,
        topic: &str,
        allow_auto_create: bool,
        max_wait: Duration,
    ) -> anyhow::Result<Vec<(i32, i32)>> {
        let deadline = Instant::now() + max_wait;
        loop {
            let md = self
                .metadata(Some(&[topic.to_string()]), allow_auto_create)
                .await?;
            let t = md
                .topics
                .iter()
                .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic));
            let mut retriable = true;
            if let Some(t) = t {
                match t.error_code {
                    0 => {
                        let mut out: Vec<(i32, i32)> = t
                            .partitions
                            .iter()
                            .map(|p| (p.partition_index, p.leader_id.0))
                            .collect();
                        out.sort();
                        if !out.is_empty() && out.iter().all(|(_, l)| *l >= 0) {
                            return Ok(out);
                        }
                    }
                    // UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE: being created.
                    3 | 5 => {}
                    code => {
                        retriable = false;
                        if code == 17 || code == 29 {
                            bail!("{}", error_text(code, None));
                        }
                    }
                }
            }
            if !retriable || Instant::now() >= deadline {
                bail!(
                    "Topic {topic} not present in metadata after {} ms.",
                    max_wait.as_millis()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_parse() {
        assert_eq!(
            parse_bootstrap("a:1, b:2").unwrap_or_default(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert!(parse_bootstrap("nohost").is_err());
        assert!(parse_bootstrap("h:notaport").is_err());
        assert!(parse_bootstrap("").is_err());
    }

    #[test]
    fn error_texts() {
        assert_eq!(error_text(36, None), "Topic with this name already exists.");
        let m = StrBytes::from_static_str("Topic 'x' already exists.");
        assert_eq!(error_text(36, Some(&m)), "Topic 'x' already exists.");
    }

    #[test]
    fn capped_versions() {
        assert_eq!(client_max_version(ApiKey::Fetch), 12);
        assert_eq!(client_max_version(ApiKey::Metadata), 13);
    }
}
