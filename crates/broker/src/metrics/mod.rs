//! The node's metrics, under the names Kafka's dashboards query.
//!
//! Kafka exposes JMX MBeans and people scrape them through the Prometheus JMX exporter; the
//! widespread dashboards (Strimzi's, Confluent's examples) query the names that exporter's
//! rules make of them: `kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=T`
//! becomes `kafka_server_brokertopicmetrics_messagesin_total{topic="T"}`, the all-topics MBean
//! the same name without the label. rafka serves those names natively.
//!
//! Two kinds of metrics live here:
//! - counters that the request paths bump ([`Metrics`]): per-topic traffic, requests by API,
//!   connections per listener. They are atomics reached without a lock on the produce and
//!   fetch paths (a topic's counters are looked up once per partition of a request, under a
//!   read lock only when the topic is new to this node);
//! - gauges read when scraped ([`scrape`]): replica and partition state from the metadata
//!   image, log sizes, the metadata quorum, consumer lag from the group coordinator's committed
//!   offsets, and the process ([`process`]).
//!
//! Encoding is the Prometheus project's Rust client (`prometheus-client`): the classic text
//! format by default, OpenMetrics when the scraper asks for it.

pub mod process;
pub mod scrape;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rafka_protocol::kafka_protocol::messages::ApiKey;

/// Label sets built at run time: `[("topic", "orders")]`, or none for an all-topics series.
pub type Labels = Vec<(&'static str, String)>;

/// Kafka's `BrokerTopicMetrics` meters of one topic (or of all topics).
#[derive(Debug, Clone, Default)]
pub struct TopicCounters {
    pub messages_in: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub produce_requests: Counter,
    pub fetch_requests: Counter,
    pub failed_produce_requests: Counter,
    pub failed_fetch_requests: Counter,
}

/// The `BrokerTopicMetrics` families, one series per topic plus the unlabelled all-topics one.
#[derive(Debug, Default)]
struct TopicFamilies {
    messages_in: Family<Labels, Counter>,
    bytes_in: Family<Labels, Counter>,
    bytes_out: Family<Labels, Counter>,
    produce_requests: Family<Labels, Counter>,
    fetch_requests: Family<Labels, Counter>,
    failed_produce_requests: Family<Labels, Counter>,
    failed_fetch_requests: Family<Labels, Counter>,
}

impl TopicFamilies {
    /// The counters of one label set; each is shared with its family, so bumping the returned
    /// handles is what the next scrape shows.
    fn counters(&self, labels: &Labels) -> TopicCounters {
        TopicCounters {
            messages_in: self.messages_in.get_or_create_owned(labels),
            bytes_in: self.bytes_in.get_or_create_owned(labels),
            bytes_out: self.bytes_out.get_or_create_owned(labels),
            produce_requests: self.produce_requests.get_or_create_owned(labels),
            fetch_requests: self.fetch_requests.get_or_create_owned(labels),
            failed_produce_requests: self.failed_produce_requests.get_or_create_owned(labels),
            failed_fetch_requests: self.failed_fetch_requests.get_or_create_owned(labels),
        }
    }

    fn remove(&self, labels: &Labels) {
        self.messages_in.remove(labels);
        self.bytes_in.remove(labels);
        self.bytes_out.remove(labels);
        self.produce_requests.remove(labels);
        self.fetch_requests.remove(labels);
        self.failed_produce_requests.remove(labels);
        self.failed_fetch_requests.remove(labels);
    }

    fn register(&self, r: &mut Registry) {
        let prefix = "kafka_server_brokertopicmetrics_";
        let families = [
            (
                "messagesin",
                "Records appended (Kafka's MessagesInPerSec)",
                &self.messages_in,
            ),
            (
                "bytesin",
                "Record batch bytes received by produce requests (BytesInPerSec)",
                &self.bytes_in,
            ),
            (
                "bytesout",
                "Record batch bytes sent to consumers (BytesOutPerSec; follower fetches excluded)",
                &self.bytes_out,
            ),
            (
                "totalproducerequests",
                "Produce requests, counted per partition (TotalProduceRequestsPerSec)",
                &self.produce_requests,
            ),
            (
                "totalfetchrequests",
                "Fetch requests, counted per partition (TotalFetchRequestsPerSec)",
                &self.fetch_requests,
            ),
            (
                "failedproducerequests",
                "Partition appends that failed (FailedProduceRequestsPerSec)",
                &self.failed_produce_requests,
            ),
            (
                "failedfetchrequests",
                "Partition reads that failed (FailedFetchRequestsPerSec)",
                &self.failed_fetch_requests,
            ),
        ];
        for (name, help, family) in families {
            r.register(format!("{prefix}{name}"), help, family.clone());
        }
    }
}

/// One topic's counters together with the all-topics ones: every event bumps both, as Kafka's
/// `BrokerTopicStats` marks the topic meter and `allTopicsStats`.
#[derive(Debug, Clone, Copy)]
pub struct TopicStats<'a> {
    topic: &'a TopicCounters,
    all: &'a TopicCounters,
}

impl TopicStats<'_> {
    pub fn produce_request(&self) {
        self.topic.produce_requests.inc();
        self.all.produce_requests.inc();
    }

    pub fn produce_failed(&self) {
        self.topic.failed_produce_requests.inc();
        self.all.failed_produce_requests.inc();
    }

    /// A successful append of `records` records in `bytes` bytes of batches.
    pub fn appended(&self, records: u64, bytes: u64) {
        self.topic.messages_in.inc_by(records);
        self.all.messages_in.inc_by(records);
        self.topic.bytes_in.inc_by(bytes);
        self.all.bytes_in.inc_by(bytes);
    }

    pub fn fetch_request(&self) {
        self.topic.fetch_requests.inc();
        self.all.fetch_requests.inc();
    }

    pub fn fetch_failed(&self) {
        self.topic.failed_fetch_requests.inc();
        self.all.failed_fetch_requests.inc();
    }

    pub fn bytes_out(&self, bytes: u64) {
        if bytes > 0 {
            self.topic.bytes_out.inc_by(bytes);
            self.all.bytes_out.inc_by(bytes);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    request: &'static str,
    version: i16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestName {
    request: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

/// Request time buckets in milliseconds: 0.5 ms to about 33 s, doubling. A fetch that long-polls
/// for `fetch.max.wait.ms` (500 ms by default) lands in the 512 ms bucket.
fn request_time_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.5, 2.0, 17,
    ))
}

/// Connection gauges of one listener, held by its accept loop.
#[derive(Debug, Clone, Default)]
pub struct ListenerConnections {
    open: Gauge,
    created: Counter,
}

impl ListenerConnections {
    /// A connection was accepted; the returned guard counts it open until dropped.
    pub fn opened(&self) -> OpenConnection {
        self.created.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

/// Counts one open connection (see [`ListenerConnections::opened`]).
#[derive(Debug)]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Most topics this node keeps counters for; topics past it share the all-topics series only
/// (a bound on memory and on scrape size, as Kafka's per-topic MBeans are not bounded but a
/// scrape of millions of series is useless anyway).
const TOPICS_MAX: usize = 10_000;

/// The counters the request paths bump.
#[derive(Debug)]
pub struct Metrics {
    families: TopicFamilies,
    all_topics: TopicCounters,
    /// Counters of no family: what topics past [`TOPICS_MAX`] bump besides the all-topics ones.
    detached: TopicCounters,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicCounters>>>,
    requests: Family<RequestLabels, Counter>,
    request_time: Family<RequestName, Histogram, fn() -> Histogram>,
    connections: Family<ListenerLabel, Gauge>,
    connection_creations: Family<ListenerLabel, Counter>,
    /// Kafka's API names by key (`Produce`, `Fetch`, ...), for the `request` label.
    api_names: Vec<&'static str>,
    /// Each API's series, taken from the families on first use and then reached by index: a
    /// request costs atomic adds and the histogram's lock, not two hashed family lookups.
    request_handles: Vec<RequestHandles>,
}

/// One API's request series: its counter per version and its time histogram.
#[derive(Debug, Default)]
struct RequestHandles {
    by_version: Vec<OnceLock<Counter>>,
    time: OnceLock<Histogram>,
}

/// Versions above this share the family lookup (no API has that many versions today).
const VERSIONS_INDEXED: usize = 32;

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let families = TopicFamilies::default();
        let all_topics = families.counters(&Vec::new());
        let api_names: Vec<&'static str> = (0..=i16::from(u8::MAX))
            .map(|key| match ApiKey::try_from(key) {
                // Kafka's `ApiKeys` names are the variants' names (Produce, ApiVersions, ...).
                Ok(k) => &*Box::leak(format!("{k:?}").into_boxed_str()),
                Err(()) => "Unknown",
            })
            .collect();
        Metrics {
            families,
            all_topics,
            detached: TopicCounters::default(),
            topics: RwLock::new(HashMap::new()),
            requests: Family::default(),
            request_time: Family::new_with_constructor(request_time_buckets),
            connections: Family::default(),
            connection_creations: Family::default(),
            request_handles: api_names
                .iter()
                .map(|_| RequestHandles {
                    by_version: (0..VERSIONS_INDEXED).map(|_| OnceLock::new()).collect(),
                    time: OnceLock::new(),
                })
                .collect(),
            api_names,
        }
    }

    /// The counters of `topic` (created on first use) with the all-topics ones.
    pub fn topic(&self, topic: &str) -> TopicHandle {
        let found = self
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .cloned();
        let counters = match found {
            Some(c) => Some(c),
            None => {
                let mut map = self.topics.write().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = map.get(topic) {
                    Some(c.clone())
                } else if map.len() < TOPICS_MAX {
                    let c = Arc::new(self.families.counters(&topic_labels(topic)));
                    map.insert(Arc::from(topic), c.clone());
                    Some(c)
                } else {
                    None
                }
            }
        };
        TopicHandle { counters }
    }

    /// Bumps through a [`TopicHandle`] (which owns the topic's counters) and the all-topics
    /// counters held here.
    pub fn stats<'a>(&'a self, handle: &'a TopicHandle) -> TopicStats<'a> {
        TopicStats {
            topic: handle.counters.as_deref().unwrap_or(&self.detached),
            all: &self.all_topics,
        }
    }

    /// Drops the series of topics that no longer exist (Kafka removes a deleted topic's
    /// MBeans).
    pub fn retain_topics(&self, exists: impl Fn(&str) -> bool) {
        let mut map = self.topics.write().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<Arc<str>> = map.keys().filter(|t| !exists(t)).cloned().collect();
        for t in gone {
            map.remove(&t);
            self.families.remove(&topic_labels(&t));
        }
    }

    /// One request answered (or dropped) after `elapsed`.
    pub fn request(&self, api_key: i16, version: i16, elapsed: Duration) {
        let request = self.api_name(api_key);
        let millis = elapsed.as_secs_f64() * 1000.0;
        let labels = || RequestLabels { request, version };
        let Some(h) = usize::try_from(api_key)
            .ok()
            .and_then(|k| self.request_handles.get(k))
        else {
            self.requests.get_or_create(&labels()).inc();
            self.request_time
                .get_or_create(&RequestName { request })
                .observe(millis);
            return;
        };
        match usize::try_from(version)
            .ok()
            .and_then(|v| h.by_version.get(v))
        {
            Some(c) => c
                .get_or_init(|| self.requests.get_or_create_owned(&labels()))
                .inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
        h.time
            .get_or_init(|| {
                self.request_time
                    .get_or_create_owned(&RequestName { request })
            })
            .observe(millis);
    }

    pub fn api_name(&self, api_key: i16) -> &'static str {
        usize::try_from(api_key)
            .ok()
            .and_then(|k| self.api_names.get(k))
            .copied()
            .unwrap_or("Unknown")
    }

    /// The connection gauges of one listener (Kafka's `socket-server-metrics` per listener).
    pub fn listener(&self, name: &str) -> ListenerConnections {
        let label = ListenerLabel {
            listener: name.to_string(),
        };
        ListenerConnections {
            open: self.connections.get_or_create_owned(&label),
            created: self.connection_creations.get_or_create_owned(&label),
        }
    }

    /// Registers the counters in a scrape's registry.
    pub fn register(&self, r: &mut Registry) {
        self.families.register(r);
        r.register(
            "kafka_network_requestmetrics_requests",
            "Requests by API and version (Kafka's RequestMetrics RequestsPerSec)",
            self.requests.clone(),
        );
        r.register(
            "kafka_network_requestmetrics_totaltimems",
            "Time from a request's arrival to its answer being ready, in milliseconds (Kafka's RequestMetrics TotalTimeMs)",
            self.request_time.clone(),
        );
        r.register(
            "kafka_server_socket_server_metrics_connection_count",
            "Open connections by listener",
            self.connections.clone(),
        );
        r.register(
            "kafka_server_socket_server_metrics_connection_creation",
            "Connections accepted by listener",
            self.connection_creations.clone(),
        );
    }

    /// Totals over all topics: (records in, bytes in, bytes out), for the status page.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.all_topics.messages_in.get(),
            self.all_topics.bytes_in.get(),
            self.all_topics.bytes_out.get(),
        )
    }
}

fn topic_labels(topic: &str) -> Labels {
    vec![("topic", topic.to_string())]
}

/// A topic's counters, looked up once per partition of a request.
#[derive(Debug)]
pub struct TopicHandle {
    /// `None` past [`TOPICS_MAX`] topics: only the all-topics series count then.
    counters: Option<Arc<TopicCounters>>,
}

impl TopicHandle {
    /// A handle that counts only in the all-topics series (topics that do not exist).
    pub fn none() -> Self {
        TopicHandle { counters: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(m: &Metrics) -> String {
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &r).expect("encodes");
        out
    }

    #[test]
    fn topic_counters_have_a_topic_series_and_the_all_topics_one() {
        let m = Metrics::new();
        let h = m.topic("orders");
        let s = m.stats(&h);
        s.produce_request();
        s.appended(3, 300);
        let other = m.topic("audit");
        m.stats(&other).appended(1, 50);
        m.stats(&TopicHandle::none()).produce_failed();
        let text = encoded(&m);
        assert!(
            text.contains("kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 3\n")
        );
        assert!(text.contains("kafka_server_brokertopicmetrics_messagesin_total 4\n"));
        assert!(text.contains("kafka_server_brokertopicmetrics_bytesin_total 350\n"));
        // A request for a topic that does not exist counts in the all-topics series only.
        assert!(text.contains("kafka_server_brokertopicmetrics_failedproducerequests_total 1\n"));
        assert!(!text.contains("failedproducerequests_total{topic=\"\"}"));
        assert_eq!(m.totals(), (4, 350, 0));

        m.retain_topics(|t| t != "audit");
        let text = encoded(&m);
        assert!(!text.contains("topic=\"audit\""));
        assert!(text.contains("topic=\"orders\""));
    }

    #[test]
    fn requests_are_counted_by_api_and_version_with_their_time() {
        let m = Metrics::new();
        m.request(0, 11, Duration::from_micros(700));
        m.request(0, 11, Duration::from_millis(3));
        m.request(0, 9, Duration::from_millis(1));
        m.request(1, 99, Duration::from_millis(600));
        m.request(-5, 0, Duration::from_millis(1));
        let text = encoded(&m);
        assert!(text.contains(
            "kafka_network_requestmetrics_requests_total{request=\"Produce\",version=\"11\"} 2\n"
        ));
        assert!(text.contains(
            "kafka_network_requestmetrics_requests_total{request=\"Produce\",version=\"9\"} 1\n"
        ));
        assert!(text.contains(
            "kafka_network_requestmetrics_requests_total{request=\"Fetch\",version=\"99\"} 1\n"
        ));
        assert!(text.contains(
            "kafka_network_requestmetrics_requests_total{request=\"Unknown\",version=\"0\"} 1\n"
        ));
        assert!(text
            .contains("kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"} 3\n"));
        // 0.7 ms and 1 ms are within the 1 ms bucket, 3 ms within 4 ms.
        assert!(text.contains(
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"1\"} 2\n"
        ));
        assert!(text.contains(
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"4\"} 3\n"
        ));
    }

    #[test]
    fn connections_are_counted_per_listener_until_closed() {
        let m = Metrics::new();
        let l = m.listener("PLAINTEXT");
        let a = l.opened();
        let b = l.opened();
        drop(a);
        let text = encoded(&m);
        assert!(text.contains(
            "kafka_server_socket_server_metrics_connection_count{listener=\"PLAINTEXT\"} 1\n"
        ));
        assert!(text.contains("kafka_server_socket_server_metrics_connection_creation_total{listener=\"PLAINTEXT\"} 2\n"));
        drop(b);
    }
}
