//! Dynamic broker configs (Kafka's `DynamicBrokerConfig`): values set at runtime with
//! AlterConfigs / IncrementalAlterConfigs on resource BROKER, stored as metadata records (so they
//! survive restarts and reach every broker) and layered over the static config:
//! dynamic per-broker > dynamic cluster default > static (`server.properties`, env, overrides) >
//! default.
//!
//! [`DynamicBrokerConfig`] keeps the effective [`BrokerConfig`] for the image's dynamic layers and
//! rebuilds it only when they change. Everything that must follow runtime changes (topic
//! settings of the hosted partitions, connection limits, producer expiry) reads it from here;
//! settings that need a restart in Kafka keep reading the static config.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rafka_metadata::MetadataImage;

use crate::config::{defs, BrokerConfig};
use crate::topic_config::ConfigSource;

/// The effective broker config of this node, following the metadata image.
pub struct DynamicBrokerConfig {
    static_config: Arc<BrokerConfig>,
    current: Mutex<Arc<BrokerConfig>>,
}

impl DynamicBrokerConfig {
    pub fn new(static_config: Arc<BrokerConfig>) -> Self {
        DynamicBrokerConfig {
            current: Mutex::new(static_config.clone()),
            static_config,
        }
    }

    /// The config the node started with (read-only keys, and the STATIC layer).
    pub fn static_config(&self) -> &Arc<BrokerConfig> {
        &self.static_config
    }

    /// The effective config for `image`'s dynamic layers.
    pub fn current(&self, image: &MetadataImage) -> Arc<BrokerConfig> {
        let cluster = &image.broker_configs.cluster_default;
        let node = image.broker_configs.node(self.static_config.node_id);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.layers.cluster_default == *cluster && current.layers.node == *node {
            return current.clone();
        }
        let next = match self.static_config.with_dynamic(cluster, node) {
            Ok(c) => c,
            Err(e) => {
                // Values are validated before they are written, so this means a log written by
                // another version; keep the last good values rather than stop serving, and
                // record the layers so the warning is not repeated for every request.
                tracing::warn!(error = %e, "Ignoring dynamic broker configs that do not apply");
                let mut c = BrokerConfig::clone(&current);
                c.layers.cluster_default = cluster.clone();
                c.layers.node = node.clone();
                c
            }
        };
        tracing::info!(
            cluster_default = ?cluster,
            node = ?node,
            "Dynamic broker configs changed"
        );
        *current = Arc::new(next);
        current.clone()
    }
}

/// The broker keys that spell the same setting, in Kafka's order of precedence
/// (`DynamicBrokerConfig.brokerConfigSynonyms`): `log.retention.ms` > `.minutes` > `.hours`,
/// `log.roll.ms` > `log.roll.hours`; every other key is its own only synonym.
pub fn synonym_names(key: &str) -> Vec<&str> {
    const RETENTION: &[&str] = &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];
    if RETENTION.contains(&key) {
        RETENTION.to_vec()
    } else if ROLL.contains(&key) {
        ROLL.to_vec()
    } else {
        vec![key]
    }
}

/// One DescribeConfigs synonym.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// Where `names` are set explicitly, most specific layer first and, within a layer, in the
/// order of `names` (Kafka's `ConfigHelper.configSynonyms` without the defaults).
pub fn explicit_synonyms(broker: &BrokerConfig, names: &[&str]) -> Vec<Synonym> {
    let layers: [(&BTreeMap<String, String>, ConfigSource); 3] = [
        (&broker.layers.node, ConfigSource::DynamicBroker),
        (
            &broker.layers.cluster_default,
            ConfigSource::DynamicDefaultBroker,
        ),
        (&broker.layers.static_props, ConfigSource::StaticBroker),
    ];
    let mut out = Vec::new();
    for (map, source) in layers {
        for name in names {
            if let Some(v) = map.get(*name) {
                out.push(Synonym {
                    name: name.to_string(),
                    value: Some(v.clone()),
                    source,
                });
            }
        }
    }
    out
}

/// [`explicit_synonyms`] followed by the defaults of `names` that have one.
pub fn all_synonyms(broker: &BrokerConfig, names: &[&str]) -> Vec<Synonym> {
    let mut out = explicit_synonyms(broker, names);
    for name in names {
        if let Some(d) = defs::broker_def(name).and_then(|d| d.default) {
            out.push(Synonym {
                name: name.to_string(),
                value: Some(d.to_string()),
                source: ConfigSource::Default,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn synonyms_list_layers_in_kafkas_order() {
        let (static_config, _) =
            BrokerConfig::from_props(&map(&[("log.retention.hours", "2")])).expect("valid");
        let broker = static_config
            .with_dynamic(
                &map(&[("log.retention.ms", "100")]),
                &map(&[("log.retention.ms", "200")]),
            )
            .expect("valid");
        let names = synonym_names("log.retention.hours");
        let got: Vec<(String, ConfigSource)> = all_synonyms(&broker, &names)
            .into_iter()
            .map(|s| (s.name, s.source))
            .collect();
        assert_eq!(
            got,
            vec![
                ("log.retention.ms".to_string(), ConfigSource::DynamicBroker),
                (
                    "log.retention.ms".to_string(),
                    ConfigSource::DynamicDefaultBroker
                ),
                (
                    "log.retention.hours".to_string(),
                    ConfigSource::StaticBroker
                ),
                ("log.retention.hours".to_string(), ConfigSource::Default),
            ]
        );
        assert_eq!(broker.log_retention_ms, 200);
    }

    #[test]
    fn effective_config_follows_the_image() {
        let (static_config, _) = BrokerConfig::from_props(&BTreeMap::new()).expect("valid");
        let dynamic = DynamicBrokerConfig::new(Arc::new(static_config));
        let mut image = MetadataImage::empty("c");
        assert_eq!(dynamic.current(&image).message_max_bytes, 1_048_588);
        image.apply_record(&rafka_metadata::MetadataRecord::BrokerConfig {
            node_id: None,
            key: "message.max.bytes".into(),
            value: Some("5000".into()),
        });
        assert_eq!(dynamic.current(&image).message_max_bytes, 5000);
        image.apply_record(&rafka_metadata::MetadataRecord::BrokerConfig {
            node_id: Some(1),
            key: "message.max.bytes".into(),
            value: Some("6000".into()),
        });
        image.apply_record(&rafka_metadata::MetadataRecord::BrokerConfig {
            node_id: Some(2),
            key: "message.max.bytes".into(),
            value: Some("7000".into()),
        });
        assert_eq!(dynamic.current(&image).message_max_bytes, 6000);
        image.apply_record(&rafka_metadata::MetadataRecord::BrokerConfig {
            node_id: Some(1),
            key: "message.max.bytes".into(),
            value: None,
        });
        assert_eq!(dynamic.current(&image).message_max_bytes, 5000);
        assert_eq!(dynamic.static_config().message_max_bytes, 1_048_588);
    }
}
