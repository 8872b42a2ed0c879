//! The one table of config keys: name, type, default, whether rafka implements it, whether it can
//! change at runtime, and the documentation. Parsing, validation, DescribeConfigs and
//! `docs/configuration.md` all read this table, so a key is described in exactly one place.

/// The type of a config value, with Kafka's names (`ConfigDef.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
    Password,
}

impl ConfigType {
    /// The numeric code DescribeConfigs v3+ reports (`DescribeConfigsResponse.ConfigType`).
    pub fn describe_code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Password => 9,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "boolean",
            ConfigType::Int => "int",
            ConfigType::Long => "long",
            ConfigType::Double => "double",
            ConfigType::String => "string",
            ConfigType::List => "list",
            ConfigType::Password => "password",
        }
    }
}

/// How far rafka honours a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Parsed, validated strictly and acted on.
    Implemented,
    /// A valid Kafka key whose feature has not landed yet: accepted with one warning.
    NotYet,
}

/// One broker config key.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Kafka's default as text; `None` is Kafka's `null`.
    pub default: Option<&'static str>,
    pub support: Support,
    /// Whether Kafka lets this key change without a restart (read-only in DescribeConfigs if not).
    pub dynamic: bool,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    support: Support,
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        support,
        dynamic: is_dynamic(name),
        doc,
    }
}

/// Broker keys Kafka lets AlterConfigs change at runtime (`DynamicBrokerConfig.AllDynamicConfigs`:
/// the log configs of `DynamicLogConfig`, the cleaner's, the thread pools', the connection
/// limits' and the producer state manager's). One list rather than a flag per table entry, so
/// that a key added to the table later is dynamic exactly when Kafka says so. Keys rafka does not
/// define are harmless here. Not dynamic in rafka although Kafka allows it per broker:
/// `listeners`, `advertised.listeners` and `listener.security.protocol.map` (rafka binds its
/// listeners once at startup) and the SSL/SASL listener configs (no TLS yet).
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    // DynamicLogConfig: the broker synonyms of the topic configs.
    "log.segment.bytes",
    "log.roll.ms",
    "log.roll.jitter.ms",
    "log.index.size.max.bytes",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.retention.bytes",
    "log.retention.ms",
    "message.max.bytes",
    "log.index.interval.bytes",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.segment.delete.delay.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleanup.policy",
    "unclean.leader.election.enable",
    "min.insync.replicas",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "log.preallocate",
    "log.message.timestamp.type",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms",
    "log.message.downconversion.enable",
    "log.local.retention.ms",
    "log.local.retention.bytes",
    // LogCleaner.ReconfigurableConfigs, except `log.cleaner.threads`: rafka starts its cleaner
    // threads once, so a runtime change would be accepted without effect.
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.backoff.ms",
    // DynamicThreadPool
    "num.io.threads",
    "num.replica.fetchers",
    "num.recovery.threads.per.data.dir",
    "background.threads",
    // SocketServer and the data-plane acceptor
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.connection.creation.rate",
    "num.network.threads",
    // DynamicProducerStateManagerConfig
    "producer.id.expiration.ms",
    "transaction.partition.verification.enable",
];

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `name` is in [`DYNAMIC_BROKER_CONFIGS`] (a `const fn` so the table can use it).
pub const fn is_dynamic(name: &str) -> bool {
    let mut i = 0;
    while i < DYNAMIC_BROKER_CONFIGS.len() {
        if str_eq(DYNAMIC_BROKER_CONFIGS[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

use ConfigType::*;
use Support::*;

/// Broker keys rafka knows, in the order `docs/configuration.md` lists them.
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    def("process.roles", List, Some("broker,controller"), Implemented,
        "The roles of this node: `broker`, `controller`, or both (`broker,controller`, a combined node). Kafka has no default; rafka's zero-config default is `broker,controller`, a single combined node. An empty list, an unknown role or a role named twice stops the start with Kafka's message. A node with neither `controller.quorum.voters` nor `controller.quorum.bootstrap.servers` is a standalone quorum of itself (a rafka extension; Kafka refuses that, and so does rafka for a broker-only node, which has no controller). Kafka's role rules apply: a controller's `node.id` is among non-empty voters and its `controller.listener.names` are in `listeners`; a controller-only node has only controller listeners; a broker-only node is not a voter, names its controller listener in `controller.listener.names` and does not list it in `listeners`; a broker has at least one broker listener."),
    def("node.id", Int, Some("1"), Implemented,
        "The node id of this broker and controller. Kafka has no default; rafka uses 1 so that it starts with no configuration."),
    def("broker.id", Int, None, Implemented,
        "The ZooKeeper-era name of `node.id`: the node id when `node.id` is unset; must equal it when both are set. A file with `zookeeper.connect` and no `process.roles` runs as a single combined node with one warning."),
    def("listeners", List, Some("PLAINTEXT://:9092"), Implemented,
        "Comma-separated `NAME://host:port` listeners. An empty host binds every interface; `[::1]` style IPv6 hosts are accepted. Names map to a protocol through `listener.security.protocol.map`. Entries named in `controller.listener.names` are controller listeners, not client listeners."),
    def("advertised.listeners", List, None, Implemented,
        "Listeners handed to clients in Metadata. Defaults to `listeners`, with an empty or wildcard host replaced by `localhost`. A listener written here with an empty host (`PLAINTEXT://:9092`) advertises this host's address (its host name resolved; Kafka advertises the canonical host name); `0.0.0.0` is refused as in Kafka. Other hosts are never resolved. Every name must be one of `listeners`; controller listeners may be listed and are not handed to clients."),
    def("listener.security.protocol.map", String,
        Some("PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"), Implemented,
        "Maps listener names to security protocols. When it is not set, the names in `controller.listener.names` map to PLAINTEXT, as in Kafka; when it is set, each controller listener must be in it. Only PLAINTEXT listeners are served today; others are refused at startup."),
    def("controller.listener.names", List, None, Implemented,
        "Listener names used by the controller, comma-separated. The controller listener is opened when the node is a controller in a multi-node quorum (`controller.quorum.voters` or `controller.quorum.bootstrap.servers` set); a standalone node runs its controller in-process and parses its controller listener without opening it. A controller needs every name here in `listeners`. A broker-only node must set it (the first name is the listener of the controllers it connects to) and must not list it in `listeners`."),
    def("inter.broker.listener.name", String, None, Implemented,
        "The listener brokers use to talk to each other. Must not be set together with `security.inter.broker.protocol`; without either, the name is `PLAINTEXT`. It must be a broker listener (advertised, not a controller listener) when set, when `security.inter.broker.protocol` is set, or when the node is in a multi-node cluster; a standalone node that names none and has no `PLAINTEXT` listener uses its first broker listener."),
    def("security.inter.broker.protocol", String, Some("PLAINTEXT"), Implemented,
        "The inter-broker listener when `inter.broker.listener.name` is unset: the listener named after this protocol. One of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (only PLAINTEXT is served so far). Must not be set together with `inter.broker.listener.name`."),
    def("controller.quorum.voters", List, Some(""), Implemented,
        "The static controller quorum: `{id}@{host}:{port},...`, IPv6 hosts in brackets. The voters are static (rafka does not add or remove voters at runtime). A controller's `node.id` must be one of them and a broker-only node's must not. An id listed twice or a negative id is refused (Kafka silently keeps the last entry of an id). Empty, with no bootstrap servers: this node is a standalone quorum of one."),
    def("controller.quorum.bootstrap.servers", List, Some(""), Implemented,
        "`{host}:{port},...` of controllers (KIP-853), used when `controller.quorum.voters` is empty: the controllers a broker-only node fetches the metadata log from (it observes the quorum; it never votes) and registers with."),
    def("controller.quorum.election.timeout.ms", Int, Some("1000"), Implemented,
        "How long a candidate waits for an election to be won before it stands again: rafka draws the wait afresh each time between 1/2 and 3/2 of this value, so candidates that split a vote do not keep colliding. Must be positive."),
    def("controller.quorum.fetch.timeout.ms", Int, Some("2000"), Implemented,
        "How long a voter goes without hearing from the leader before it stands for election (rafka draws the wait afresh each time between 3/4 and all of this value); how long a broker waits for a fetch answer from a controller before it asks another. The leader's heartbeat runs every 1/20 of it, and a voter that heard from a leader within 1/2 of it refuses to vote for anyone else (openraft's leader lease). Must be positive."),
    def("controller.quorum.request.timeout.ms", Int, Some("2000"), Implemented,
        "How long a request to another controller (a Raft RPC, an observer fetch, a forwarded proposal) waits for its answer before it fails and is retried. Must be positive."),
    def("request.timeout.ms", Int, Some("30000"), Implemented,
        "How long a request from this broker to another broker (transaction markers, transaction verification) waits for its answer before it fails and is retried. Must be positive."),
    def("auto.leader.rebalance.enable", Boolean, Some("true"), Implemented,
        "The active controller moves the leadership of every partition whose preferred (first) replica is in sync and live but does not lead back to it, every `leader.imbalance.check.interval.seconds` (a PREFERRED election, at most 1000 partitions per check), so leaders spread out again after failovers."),
    def("leader.imbalance.check.interval.seconds", Long, Some("300"), Implemented,
        "How often the active controller checks for partitions to move back to their preferred leaders (with `auto.leader.rebalance.enable`). Must be positive."),
    def("leader.imbalance.per.broker.percentage", Int, Some("10"), NotYet,
        "Not used by KRaft controllers (Kafka's neither): every imbalanced partition is moved at each check."),
    def("max.incremental.fetch.session.cache.slots", Int, Some("1000"), Implemented,
        "Incremental fetch sessions (KIP-227) this broker keeps for consumers and followers. A full cache evicts a session idle for 120 s, else the least valuable one (a consumer's before a follower's, then the one with the fewest partitions) when the new session is worth more; a client refused a session keeps sending full fetches. 0 turns sessions off. Must be at least 0."),
    def("replica.lag.time.max.ms", Long, Some("30000"), Implemented,
        "A follower that has not caught up with its leader's log end for this long is removed from the ISR (through AlterPartition to the controller). Must be positive."),
    def("replica.fetch.wait.max.ms", Int, Some("500"), Implemented,
        "How long a follower's fetch waits at the leader for `replica.fetch.min.bytes` of new data. Should stay below `replica.lag.time.max.ms`. Must be positive."),
    def("replica.fetch.min.bytes", Int, Some("1"), Implemented,
        "The data a follower's fetch waits for at the leader before it is answered (up to `replica.fetch.wait.max.ms`). Must be positive."),
    def("replica.fetch.max.bytes", Int, Some("1048576"), Implemented,
        "The data a follower fetches per partition in one request (at least one whole batch is returned, whatever its size). Must be positive."),
    def("replica.fetch.response.max.bytes", Int, Some("10485760"), Implemented,
        "The data a follower fetches in one request over all its partitions (at least one whole batch is returned, whatever its size). Must be positive."),
    def("num.replica.fetchers", Int, Some("1"), Implemented,
        "Replica fetchers per source broker: the partitions a follower replicates from one leader are spread over this many fetchers (Kafka's abs(31 * topic.hashCode() + partition) % n), each with its own connection and fetch session. Dynamic: a change regroups the partitions at once. Must be at least 1."),
    def("replica.fetch.backoff.ms", Int, Some("1000"), Implemented,
        "How long a follower waits before it fetches again from a leader after an error. Must be positive."),
    def("replica.high.watermark.checkpoint.interval.ms", Long, Some("5000"), Implemented,
        "How often each log dir's `replication-offset-checkpoint` (every replica's high watermark) is written; it is also written at shutdown. A restarted replica starts from its checkpointed high watermark (never past its log end). rafka checks the interval once a second, so values below 1000 act as 1000. Must be positive."),
    def("controller.quorum.retry.backoff.ms", Int, Some("20"), Implemented,
        "How long to wait before retrying a failed request to a controller (connection refused, no leader yet). Must be positive."),
    def("broker.heartbeat.interval.ms", Int, Some("2000"), Implemented,
        "How often a broker sends a BrokerHeartbeat to the active controller. Must be positive."),
    def("broker.session.timeout.ms", Int, Some("9000"), Implemented,
        "A broker the active controller has not heard from for this long is fenced (it leads no partition until it heartbeats again). Must be greater than broker.heartbeat.interval.ms (a rafka check)."),
    def("initial.broker.registration.timeout.ms", Int, Some("60000"), Implemented,
        "How long a starting broker waits for the controllers to accept its registration before it gives up and exits. Must be positive."),
    def("log.dirs", List, None, Implemented,
        "Comma-separated directories that hold partition logs. Each gets its own meta.properties (same cluster.id and node.id, its own directory.id), checkpoints and clean-shutdown marker; a new partition goes to the dir holding the fewest partitions. Every dir must be usable at startup, and a partition found in two dirs stops the start."),
    def("log.dir", String, Some("./rafka-data"), Implemented,
        "The log directory used when `log.dirs` is unset. Kafka's default is /tmp/kafka-logs; rafka keeps its data in ./rafka-data."),
    def("metadata.log.dir", String, None, Implemented,
        "Where the metadata Raft log lives (`__cluster_metadata-0`). Defaults to the first log dir."),
    def("broker.rack", String, None, Implemented, "The rack of this broker, reported in Metadata."),
    def("http.listener", String, Some(""), Implemented,
        "A rafka key (Kafka has none: its metrics go through JMX and an exporter). `host:port` of the HTTP listener that serves `/metrics` (Prometheus text, or OpenMetrics when the scraper asks for it), the health endpoints `/livez` and `/readyz`, and the read-only status page at `/`; an empty host binds every interface, IPv6 hosts go in brackets. Empty (the binary's default) turns it off; the container image sets `0.0.0.0:9404` unless `KAFKA_HTTP_LISTENER` is given (empty turns it off). See docs/observability.md."),
    def("auto.create.topics.enable", Boolean, Some("true"), Implemented,
        "Create a topic when a client asks for its metadata and allows auto-creation."),
    def("num.partitions", Int, Some("1"), Implemented, "Partitions of an auto-created topic."),
    def("default.replication.factor", Int, Some("1"), Implemented,
        "Replication factor of auto-created topics and of CreateTopics requests that pass -1."),
    def("message.max.bytes", Int, Some("1048588"), Implemented,
        "Largest record batch the broker accepts (per batch, after compression). Topic synonym: max.message.bytes."),
    def("socket.request.max.bytes", Int, Some("104857600"), Implemented,
        "Largest request frame; checked against the size prefix before any buffer is allocated."),
    def("max.connections", Int, Some("2147483647"), Implemented,
        "Connections the broker accepts at once; further connections are closed on accept."),
    def("max.connections.per.ip", Int, Some("2147483647"), Implemented, "Connections accepted from one IP address."),
    def("queued.max.requests", Int, Some("500"), Implemented,
        "Requests read ahead on one connection while earlier ones are answered (rafka bounds this per connection)."),
    def("connections.max.idle.ms", Long, Some("600000"), Implemented, "Idle connections are closed after this long."),
    def("log.segment.bytes", Int, Some("1073741824"), Implemented, "Segment size. Topic synonym: segment.bytes."),
    def("log.roll.ms", Long, None, Implemented, "Roll a segment after this long. Topic synonym: segment.ms."),
    def("log.roll.hours", Int, Some("168"), Implemented, "Roll a segment after this many hours when log.roll.ms is unset."),
    def("log.index.interval.bytes", Int, Some("4096"), Implemented,
        "Bytes of log between two offset-index entries. Topic synonym: index.interval.bytes."),
    def("log.index.size.max.bytes", Int, Some("10485760"), Implemented,
        "Preallocated size of a segment's offset index. Topic synonym: segment.index.bytes."),
    def("log.flush.interval.messages", Long, Some("9223372036854775807"), Implemented,
        "fsync a log after this many messages. Default: leave it to the OS (and, later, replication)."),
    def("log.flush.interval.ms", Long, None, Implemented, "fsync a log when its oldest unflushed data is this old."),
    def("log.message.timestamp.type", String, Some("CreateTime"), Implemented,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock. Topic synonym: message.timestamp.type."),
    def("log.message.timestamp.before.max.ms", Long, Some("9223372036854775807"), Implemented,
        "With CreateTime, a produced record whose timestamp is more than this far in the past is refused with INVALID_TIMESTAMP (KIP-937). Topic synonym: message.timestamp.before.max.ms."),
    def("log.message.timestamp.after.max.ms", Long, Some("3600000"), Implemented,
        "With CreateTime, a produced record whose timestamp is more than this far in the future is refused with INVALID_TIMESTAMP (KIP-937). Topic synonym: message.timestamp.after.max.ms."),
    def("log.retention.hours", Int, Some("168"), Implemented,
        "Delete a segment once its newest record is this many hours old (when log.retention.minutes and log.retention.ms are unset). Topic synonym: retention.ms."),
    def("log.retention.minutes", Int, None, Implemented, "Retention by time in minutes; wins over log.retention.hours."),
    def("log.retention.ms", Long, None, Implemented, "Retention by time in milliseconds; wins over minutes and hours. -1: keep forever."),
    def("log.retention.bytes", Long, Some("-1"), Implemented,
        "Delete the oldest segments while a partition is larger than this. -1: no limit. Topic synonym: retention.bytes."),
    def("log.retention.check.interval.ms", Long, Some("300000"), Implemented, "How often retention is enforced."),
    def("log.cleanup.policy", List, Some("delete"), Implemented,
        "delete (retention deletes old segments), compact (the log cleaner keeps the latest record per key) or both. Topic synonym: cleanup.policy."),
    def("log.cleaner.enable", Boolean, Some("true"), Implemented,
        "Run the log cleaner, which compacts topics with cleanup.policy=compact (__consumer_offsets and __transaction_state among them)."),
    def("log.cleaner.threads", Int, Some("1"), Implemented,
        "Cleaner threads; each cleans one log at a time and gets log.cleaner.dedupe.buffer.size / threads of offset map."),
    def("log.cleaner.backoff.ms", Long, Some("15000"), Implemented,
        "How long a cleaner thread sleeps when no log needs cleaning."),
    def("log.cleaner.dedupe.buffer.size", Long, Some("134217728"), Implemented,
        "Memory for the cleaners' offset maps (24 bytes per key, 90% usable, as Kafka's): a pass whose dirty section has more keys cleans up to where the map filled and the next pass goes on from there."),
    def("log.cleaner.io.max.bytes.per.second", Double, Some("1.7976931348623157E308"), Implemented,
        "Throttle on the bytes the cleaners read plus write per second (default: unthrottled)."),
    def("log.cleaner.min.cleanable.ratio", Double, Some("0.5"), Implemented,
        "A compacted log is cleaned once its dirty (not yet cleaned) bytes are this share of it. Topic synonym: min.cleanable.dirty.ratio."),
    def("log.cleaner.delete.retention.ms", Long, Some("86400000"), Implemented,
        "Tombstones and removable transaction markers stay this long after the cleaner first saw them (KIP-534 delete horizon). Topic synonym: delete.retention.ms."),
    def("log.cleaner.min.compaction.lag.ms", Long, Some("0"), Implemented,
        "Records younger than this are not compacted. Topic synonym: min.compaction.lag.ms."),
    def("log.cleaner.max.compaction.lag.ms", Long, Some("9223372036854775807"), Implemented,
        "A log whose oldest uncompacted record is older than this is cleaned whatever its dirty ratio (KIP-354). Topic synonym: max.compaction.lag.ms."),
    def("log.segment.delete.delay.ms", Long, Some("60000"), Implemented,
        "A deleted segment's files are renamed *.deleted and removed this much later, so reads in flight finish. Topic synonym: file.delete.delay.ms."),
    def("min.insync.replicas", Int, Some("1"), Implemented,
        "Replicas that must be in sync for an acks=all produce, capped at the replication factor as in Kafka 3.7+; fewer gets NOT_ENOUGH_REPLICAS. Topic synonym: min.insync.replicas."),
    def("compression.type", String, Some("producer"), Implemented,
        "Codec batches are stored in: uncompressed, gzip, snappy, lz4, zstd, or producer (keep the producer's codec). A batch in another codec is decompressed, validated and rewritten in this one on produce. Topic synonym: compression.type."),
    def("compression.gzip.level", Int, Some("-1"), Implemented,
        "gzip level (1-9, or -1 for zlib's default, 6) of batches the broker rewrites. Topic synonym: compression.gzip.level."),
    def("compression.lz4.level", Int, Some("9"), Implemented,
        "lz4 level (1-17) of batches the broker rewrites. Topic synonym: compression.lz4.level."),
    def("compression.zstd.level", Int, Some("3"), Implemented,
        "zstd level (-131072 to 22) of batches the broker rewrites. Topic synonym: compression.zstd.level."),
    def("offsets.topic.replication.factor", Int, Some("1"), Implemented,
        "Replication factor of __consumer_offsets, created on the first FindCoordinator. Kafka's default, 3, once controller.quorum.voters or controller.quorum.bootstrap.servers is set; the zero-config single node uses 1, as Kafka's single-node server.properties does. If fewer brokers are unfenced, FindCoordinator answers COORDINATOR_NOT_AVAILABLE, as Kafka does. Coordinator writes are answered once replicated (acks=all)."),
    def("offsets.topic.num.partitions", Int, Some("50"), Implemented,
        "Partitions of __consumer_offsets when it is created. A group lives in partition abs(groupId.hashCode()) % partitions, as in Kafka."),
    def("offsets.topic.segment.bytes", Int, Some("104857600"), Implemented, "segment.bytes of __consumer_offsets."),
    def("offsets.retention.minutes", Int, Some("10080"), Implemented,
        "Committed offsets of a group expire this long after the group became empty (or, for topics an active group no longer subscribes to, after their commit)."),
    def("offsets.retention.check.interval.ms", Long, Some("600000"), Implemented, "How often expired offsets are removed."),
    def("offset.metadata.max.bytes", Int, Some("4096"), Implemented,
        "Largest metadata string of a committed offset; larger ones get OFFSET_METADATA_TOO_LARGE."),
    def("group.min.session.timeout.ms", Int, Some("6000"), Implemented,
        "Smallest session timeout a member may ask for; smaller gets INVALID_SESSION_TIMEOUT."),
    def("group.max.session.timeout.ms", Int, Some("1800000"), Implemented,
        "Largest session timeout a member may ask for; larger gets INVALID_SESSION_TIMEOUT."),
    def("group.max.size", Int, Some("2147483647"), Implemented,
        "Most members a classic group may have; a member beyond it gets GROUP_MAX_SIZE_REACHED."),
    def("group.coordinator.rebalance.protocols", List, Some("classic,consumer,streams"), Implemented,
        "Group protocols served; must contain classic. Without consumer, ConsumerGroupHeartbeat (KIP-848) answers UNSUPPORTED_VERSION; share and streams are accepted and not served."),
    def("group.consumer.session.timeout.ms", Int, Some("45000"), Implemented,
        "KIP-848 consumer groups: a member not heard from for this long is removed; within the min/max below and above the heartbeat interval (checked at startup)."),
    def("group.consumer.min.session.timeout.ms", Int, Some("45000"), Implemented,
        "Smallest session timeout of consumer groups (a per-group consumer.session.timeout.ms below it is refused)."),
    def("group.consumer.max.session.timeout.ms", Int, Some("60000"), Implemented,
        "Largest session timeout of consumer groups."),
    def("group.consumer.heartbeat.interval.ms", Int, Some("5000"), Implemented,
        "How often consumer-group members heartbeat; within the min/max below and below the session timeout."),
    def("group.consumer.min.heartbeat.interval.ms", Int, Some("5000"), Implemented,
        "Smallest heartbeat interval of consumer groups."),
    def("group.consumer.max.heartbeat.interval.ms", Int, Some("15000"), Implemented,
        "Largest heartbeat interval of consumer groups."),
    def("group.consumer.max.size", Int, Some("2147483647"), Implemented,
        "Most members a consumer group may have (GROUP_MAX_SIZE_REACHED beyond); group.max.size is for classic groups."),
    def("group.consumer.assignors", List, Some("uniform,range"), Implemented,
        "Server-side assignors of consumer groups, by name or Kafka class name; the first is the default for members that name none. rafka has uniform and range."),
    def("group.consumer.migration.policy", String, Some("bidirectional"), Implemented,
        "Online conversion between classic and consumer groups with members (KIP-848): bidirectional, upgrade, downgrade or disabled (case-insensitive). Upgrade: a classic group using the consumer protocol becomes a consumer group when a consumer-protocol member joins, its members going on with the classic protocol; downgrade: a consumer group whose last consumer-protocol member left becomes a classic group and rebalances. Empty groups convert either way whatever the policy."),
    def("group.consumer.regex.refresh.interval.ms", Int, Some("600000"), Implemented,
        "How often a consumer group's topic regular expressions are resolved again without a topic change (Kafka internal config; at least 10000)."),
    def("producer.id.expiration.ms", Int, Some("86400000"), Implemented,
        "An idempotent producer's state (epoch, last sequences) is dropped this long after its last write to a partition."),
    def("producer.id.expiration.check.interval.ms", Int, Some("600000"), Implemented,
        "How often idle producer state is dropped."),
    def("transaction.state.log.replication.factor", Int, Some("1"), Implemented,
        "Replication factor of __transaction_state, created on the first FindCoordinator for a transactional id. Kafka's default, 3, once a controller quorum is configured; 1 on the zero-config single node."),
    def("transaction.state.log.min.isr", Int, Some("1"), Implemented,
        "min.insync.replicas of __transaction_state: Kafka's default, 2, once a controller quorum is configured; 1 on the zero-config single node."),
    def("transaction.state.log.num.partitions", Int, Some("50"), Implemented,
        "Partitions of __transaction_state when it is created; a transactional id lives in abs(id.hashCode()) % partitions."),
    def("transaction.state.log.segment.bytes", Int, Some("104857600"), Implemented, "segment.bytes of __transaction_state."),
    def("transaction.max.timeout.ms", Int, Some("900000"), Implemented,
        "Largest transaction.timeout.ms a producer may ask for (INVALID_TRANSACTION_TIMEOUT beyond)."),
    def("transactional.id.expiration.ms", Int, Some("604800000"), Implemented,
        "A transactional id with no transaction for this long is forgotten."),
    def("transaction.abort.timed.out.transaction.cleanup.interval.ms", Int, Some("10000"), Implemented,
        "How often transactions open past their timeout are aborted."),
    def("transaction.remove.expired.transaction.cleanup.interval.ms", Int, Some("3600000"), Implemented,
        "How often expired transactional ids are removed."),
    def("group.initial.rebalance.delay.ms", Int, Some("3000"), Implemented,
        "How long the first rebalance of an empty group waits for more members (extended while members keep joining, up to the rebalance timeout)."),
    def("num.network.threads", Int, Some("3"), NotYet, "rafka runs on a tokio runtime; thread counts do not apply."),
    def("num.io.threads", Int, Some("8"), NotYet, "rafka runs on a tokio runtime; thread counts do not apply."),
    def("num.recovery.threads.per.data.dir", Int, Some("2"), NotYet, "Recovery runs per partition on startup."),
    def("socket.send.buffer.bytes", Int, Some("102400"), NotYet, "Left to the OS."),
    def("socket.receive.buffer.bytes", Int, Some("102400"), NotYet, "Left to the OS."),
    def("unclean.leader.election.enable", Boolean, Some("false"), Implemented,
        "When no in-sync or eligible replica can lead a partition, elect any live replica (which loses the records only the others had). Read by the controller from the topic's config, else the cluster-wide dynamic default; a controller that creates the cluster with `true` in its file writes it as that default. Turning it on (topic or cluster default) elects leaders for leaderless partitions at once. ElectLeaders UNCLEAN (`kafka-leader-election --election-type UNCLEAN`) does the same for chosen partitions whatever the setting."),
];

/// A topic-level config: its name, the broker key it falls back to, and its type.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker config that supplies the default (Kafka's synonym), if any.
    pub broker_synonym: Option<&'static str>,
    pub ty: ConfigType,
    /// Default when there is no broker synonym.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn topic(
    name: &'static str,
    broker_synonym: Option<&'static str>,
    ty: ConfigType,
    default: Option<&'static str>,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        broker_synonym,
        ty,
        default,
        doc,
    }
}

/// Kafka 4.x topic configs. Which of them take effect is documented per key in
/// docs/configuration.md; all of them are stored and reported.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    topic(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        List,
        None,
        "delete or compact.",
    ),
    topic(
        "compression.type",
        Some("compression.type"),
        String,
        None,
        "Codec the broker stores batches in; producer keeps the producer's, others rewrite batches in another codec.",
    ),
    topic(
        "compression.gzip.level",
        Some("compression.gzip.level"),
        Int,
        None,
        "gzip level of rewritten batches.",
    ),
    topic(
        "compression.lz4.level",
        Some("compression.lz4.level"),
        Int,
        None,
        "lz4 level of rewritten batches.",
    ),
    topic(
        "compression.zstd.level",
        Some("compression.zstd.level"),
        Int,
        None,
        "zstd level of rewritten batches.",
    ),
    topic(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        Long,
        None,
        "Tombstone retention on compacted topics.",
    ),
    topic(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        Long,
        None,
        "Delay before deleted segment files go.",
    ),
    topic(
        "flush.messages",
        Some("log.flush.interval.messages"),
        Long,
        None,
        "fsync after this many messages.",
    ),
    topic(
        "flush.ms",
        Some("log.flush.interval.ms"),
        Long,
        Some("9223372036854775807"),
        "fsync after this long.",
    ),
    topic(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        Int,
        None,
        "Bytes between offset-index entries.",
    ),
    topic(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        Long,
        Some("9223372036854775807"),
        "Longest a record stays uncompacted.",
    ),
    topic(
        "max.message.bytes",
        Some("message.max.bytes"),
        Int,
        None,
        "Largest record batch accepted.",
    ),
    topic(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        Long,
        None,
        "How far in the future a CreateTime timestamp may be (INVALID_TIMESTAMP beyond).",
    ),
    topic(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        Long,
        None,
        "How far in the past a CreateTime timestamp may be (INVALID_TIMESTAMP beyond).",
    ),
    topic(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        String,
        None,
        "CreateTime or LogAppendTime.",
    ),
    topic(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        Double,
        Some("0.5"),
        "Dirty ratio that triggers compaction.",
    ),
    topic(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        Long,
        Some("0"),
        "Shortest time a record stays uncompacted.",
    ),
    topic(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        Int,
        None,
        "Replicas needed for acks=all.",
    ),
    topic(
        "preallocate",
        None,
        Boolean,
        Some("false"),
        "Preallocate segment files.",
    ),
    topic(
        "retention.bytes",
        Some("log.retention.bytes"),
        Long,
        None,
        "Retention by size.",
    ),
    topic(
        "retention.ms",
        Some("log.retention.ms"),
        Long,
        Some("604800000"),
        "Retention by time.",
    ),
    topic(
        "segment.bytes",
        Some("log.segment.bytes"),
        Int,
        None,
        "Segment size.",
    ),
    topic(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        Int,
        None,
        "Offset index size.",
    ),
    topic(
        "segment.jitter.ms",
        None,
        Long,
        Some("0"),
        "Random jitter subtracted from segment.ms.",
    ),
    topic(
        "segment.ms",
        Some("log.roll.ms"),
        Long,
        Some("604800000"),
        "Roll a segment after this long.",
    ),
    topic(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        Boolean,
        None,
        "Allow an out-of-sync replica to lead when no in-sync or eligible one can (loses records).",
    ),
];

pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

pub fn topic_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks that `value` parses as `ty`. Kafka trims surrounding whitespace for most types.
pub fn validate_value(ty: ConfigType, value: &str) -> Result<(), std::string::String> {
    let v = value.trim();
    let ok = match ty {
        Boolean => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        Int => v.parse::<i32>().is_ok(),
        Long => v.parse::<i64>().is_ok(),
        Double => v.parse::<f64>().is_ok(),
        String | List | Password => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value {value} for configuration: expected a {}",
            ty.name()
        ))
    }
}

/// Topic value checks live in [`super::validate`], the one validator CreateTopics and
/// AlterConfigs share.
pub use super::validate::validate_topic_value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_as_their_types() {
        for d in BROKER_CONFIGS {
            if let Some(v) = d.default {
                assert!(validate_value(d.ty, v).is_ok(), "{}", d.name);
            }
        }
        for d in TOPIC_CONFIGS {
            if let Some(v) = d.default {
                assert!(validate_topic_value(d, v).is_ok(), "{}", d.name);
            }
            if let Some(s) = d.broker_synonym {
                assert!(
                    broker_def(s).is_some(),
                    "synonym {s} of {} is not a broker key",
                    d.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = BROKER_CONFIGS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn topic_validation() {
        let d = topic_def("cleanup.policy").expect("known");
        assert!(validate_topic_value(d, "compact,delete").is_ok());
        assert!(validate_topic_value(d, "bogus").is_err());
        let d = topic_def("retention.ms").expect("known");
        assert!(validate_topic_value(d, "abc").is_err());
        let d = topic_def("compression.type").expect("known");
        assert!(validate_topic_value(d, "zstd").is_ok());
        assert!(validate_topic_value(d, "none").is_err());
        let d = topic_def("compression.gzip.level").expect("known");
        assert!(validate_topic_value(d, "-1").is_ok());
        assert!(validate_topic_value(d, "9").is_ok());
        assert!(validate_topic_value(d, "0").is_err());
        let d = topic_def("compression.lz4.level").expect("known");
        assert!(validate_topic_value(d, "17").is_ok());
        assert!(validate_topic_value(d, "18").is_err());
        let d = topic_def("compression.zstd.level").expect("known");
        assert!(validate_topic_value(d, "-5").is_ok());
        assert!(validate_topic_value(d, "23").is_err());
    }
}

/// Renders the tables of `docs/configuration.md`; a test keeps the checked-in file equal to this.
pub fn render_markdown() -> std::string::String {
    use std::fmt::Write;
    let mut out = std::string::String::new();
    out.push_str("<!-- Generated from crates/broker/src/config/defs.rs by the test `configuration_doc_is_current`;\n");
    out.push_str("     regenerate with: RAFKA_UPDATE_DOCS=1 cargo test -p rafka-broker configuration_doc -->\n\n");
    out.push_str("## Broker configs\n\n");
    out.push_str("Keys marked dynamic can be changed at runtime with AlterConfigs / IncrementalAlterConfigs (resource BROKER, name `\"\"` for the cluster-wide default or the node id); the others need a restart.\n\n");
    out.push_str(
        "| key | type | default | status | dynamic | description |\n|---|---|---|---|---|---|\n",
    );
    for d in BROKER_CONFIGS {
        let status = match d.support {
            Support::Implemented => "implemented",
            Support::NotYet => "accepted, not acted on yet (warns)",
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            d.name,
            d.ty.name(),
            d.default
                .map(|v| format!("`{v}`"))
                .unwrap_or_else(|| "null".to_string()),
            status,
            if d.dynamic { "yes" } else { "no" },
            d.doc.replace('|', "\\|")
        );
    }
    out.push_str("\n## Topic configs\n\n");
    out.push_str("Set per topic at creation (CreateTopics `configs`) or later (AlterConfigs / IncrementalAlterConfigs, effective at once); reported by DescribeConfigs with their source. A topic without an override follows its broker synonym (dynamic per-broker > dynamic cluster default > static > default).\n\n");
    out.push_str(
        "| key | type | broker synonym | default | description |\n|---|---|---|---|---|\n",
    );
    for d in TOPIC_CONFIGS {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            d.name,
            d.ty.name(),
            d.broker_synonym
                .map(|s| format!("`{s}`"))
                .unwrap_or_else(|| "-".to_string()),
            d.default
                .map(|v| format!("`{v}`"))
                .unwrap_or_else(|| "from synonym".to_string()),
            d.doc.replace('|', "\\|")
        );
    }
    out
}

#[cfg(test)]
mod doc_tests {
    /// docs/configuration.md = a hand-written preamble, then the generated tables.
    #[test]
    fn configuration_doc_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let marker = "<!-- Generated from";
        let preamble = match text.find(marker) {
            Some(i) => text[..i].to_string(),
            None => text.clone(),
        };
        let expected = format!("{preamble}{}", super::render_markdown());
        if std::env::var_os("RAFKA_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).expect("write docs/configuration.md");
            return;
        }
        assert!(
            text == expected,
            "docs/configuration.md is out of date; run RAFKA_UPDATE_DOCS=1 cargo test -p rafka-broker configuration_doc"
        );
    }
}
