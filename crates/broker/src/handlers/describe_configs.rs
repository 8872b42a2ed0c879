//! DescribeConfigs (key 32): topic configs (override > dynamic broker > static broker > default)
//! and broker configs (the node's effective values, or the cluster-wide dynamic defaults for
//! resource name `""`) and group configs (KIP-848's `consumer.*`: the group's own, else the
//! broker's), each with its source, synonyms in Kafka's order (when asked), read-only
//! flag, type and documentation.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use rafka_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use crate::config::consumer_group::GROUP_CONFIG_NAMES;
use crate::config::defs::{self, ConfigType};
use crate::config::BrokerConfig;
use crate::dynamic_config::{self, Synonym};
use crate::state::Shared;
use crate::topic_config::{self, ConfigSource};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_GROUP: i8 = 32;

/// Kafka's documentation of its group configs.
fn group_config_doc(name: &str) -> &'static str {
    match name {
        "consumer.session.timeout.ms" => {
            "The timeout to detect client failures when using the consumer group protocol."
        }
        _ => "The heartbeat interval given to the members of a consumer group.",
    }
}

pub fn handle(
    shared: &Arc<Shared>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(request.resources.len());
    let image = shared.image();
    let broker = shared.dynamic_config.current(&image);
    for res in request.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let keys: Option<Vec<String>> = res
            .configuration_keys
            .as_ref()
            .filter(|k| !k.is_empty())
            .map(|k| k.iter().map(|s| s.to_string()).collect());
        let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == name));
        let fail = |r: &mut DescribeConfigsResult, code: ResponseError, message: String| {
            r.error_code = code.code();
            r.error_message = Some(StrBytes::from_string(message));
        };
        match res.resource_type {
            RESOURCE_TOPIC => match image.topic_by_name(res.resource_name.as_str()) {
                None => fail(
                    &mut r,
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic '{}' does not exist.", res.resource_name.as_str()),
                ),
                Some(topic) => {
                    for rc in topic_config::resolve_all(&broker, &topic.configs) {
                        if !wanted(rc.def.name) {
                            continue;
                        }
                        let mut c =
                            entry(rc.def.name, rc.value.clone(), rc.source, rc.def.ty, false);
                        if request.include_synonyms {
                            c.synonyms = topic_synonyms(&broker, &topic.configs, rc.def);
                        }
                        if request.include_documentation {
                            c.documentation = Some(StrBytes::from_static_str(rc.def.doc));
                        }
                        r.configs.push(c);
                    }
                }
            },
            RESOURCE_BROKER => {
                let name = res.resource_name.as_str();
                let per_broker = !name.is_empty();
                if per_broker && name.parse::<i32>().ok() != Some(shared.node_id) {
                    // Each broker describes its own configs, as in Kafka.
                    let message = match name.parse::<i32>() {
                        Err(_) => format!("Broker id must be an integer, but it is: {name}"),
                        Ok(_) => format!(
                            "Unexpected broker id, expected {} or empty string, but received {name}",
                            shared.node_id
                        ),
                    };
                    fail(&mut r, ResponseError::InvalidRequest, message);
                } else {
                    for d in defs::BROKER_CONFIGS {
                        // Resource "" lists only the keys set as cluster-wide defaults.
                        if !wanted(d.name)
                            || (!per_broker && !broker.layers.cluster_default.contains_key(d.name))
                        {
                            continue;
                        }
                        let synonyms = broker_synonyms(&broker, d.name, per_broker);
                        let source = synonyms.first().map_or(ConfigSource::Default, |s| s.source);
                        let value = if per_broker {
                            broker.value_of(d.name)
                        } else {
                            broker.layers.cluster_default.get(d.name).cloned()
                        };
                        let mut c = entry(d.name, value, source, d.ty, !d.dynamic);
                        if request.include_synonyms {
                            c.synonyms = synonyms.into_iter().map(to_wire).collect();
                        }
                        if request.include_documentation {
                            c.documentation = Some(StrBytes::from_static_str(d.doc));
                        }
                        r.configs.push(c);
                    }
                }
            }
            RESOURCE_GROUP if res.resource_name.is_empty() => fail(
                &mut r,
                ResponseError::InvalidRequest,
                "Group name must not be empty".to_string(),
            ),
            RESOURCE_GROUP => {
                // Every group has these configs, whether or not it exists (as in Kafka): its
                // own overrides, else the broker's `group.consumer.*` values.
                let settings = &shared.config.consumer_group;
                let overrides = image.group_configs.get(res.resource_name.as_str());
                for name in GROUP_CONFIG_NAMES {
                    if !wanted(name) {
                        continue;
                    }
                    let own = overrides.and_then(|o| o.get(name)).cloned();
                    let (value, source) = match own {
                        Some(v) => (Some(v), ConfigSource::Group),
                        None => (
                            settings.group_config_default(name).map(|v| v.to_string()),
                            ConfigSource::Default,
                        ),
                    };
                    let mut c = entry(name, value.clone(), source, ConfigType::Int, false);
                    if request.include_synonyms {
                        c.synonyms = vec![to_wire(Synonym {
                            name: name.to_string(),
                            value,
                            source,
                        })];
                    }
                    if request.include_documentation {
                        c.documentation = Some(StrBytes::from_static_str(group_config_doc(name)));
                    }
                    r.configs.push(c);
                }
            }
            RESOURCE_BROKER_LOGGER => fail(
                &mut r,
                ResponseError::InvalidRequest,
                "broker loggers are configured with RUST_LOG, not through DescribeConfigs"
                    .to_string(),
            ),
            other => fail(
                &mut r,
                ResponseError::InvalidRequest,
                format!("Unsupported resource type: {other}"),
            ),
        }
        results.push(r);
    }
    let mut response = DescribeConfigsResponse::default();
    response.results = results;
    response
}

fn entry(
    name: &'static str,
    value: Option<String>,
    source: ConfigSource,
    ty: ConfigType,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    let sensitive = ty == ConfigType::Password;
    c.name = StrBytes::from_static_str(name);
    c.value = if sensitive {
        None
    } else {
        value.map(StrBytes::from_string)
    };
    c.read_only = read_only;
    c.config_source = source as i8;
    c.is_sensitive = sensitive;
    c.config_type = ty.describe_code();
    c
}

fn to_wire(s: Synonym) -> DescribeConfigsSynonym {
    let mut w = DescribeConfigsSynonym::default();
    w.name = StrBytes::from_string(s.name);
    w.value = s.value.map(StrBytes::from_string);
    w.source = s.source as i8;
    w
}

/// A broker key's synonyms as Kafka lists them: every layer, most specific first, then dropped up
/// to the key itself (describing `log.retention.hours` does not list `log.retention.ms`). For
/// resource `""` only the cluster-wide dynamic defaults count.
fn broker_synonyms(broker: &BrokerConfig, key: &str, per_broker: bool) -> Vec<Synonym> {
    let names = dynamic_config::synonym_names(key);
    dynamic_config::all_synonyms(broker, &names)
        .into_iter()
        .filter(|s| per_broker || s.source == ConfigSource::DynamicDefaultBroker)
        .skip_while(|s| s.name != key)
        .collect()
}

/// Kafka lists, most specific first: the topic override, then the broker synonyms (dynamic
/// per-broker, dynamic cluster default, static, default).
fn topic_synonyms(
    broker: &BrokerConfig,
    overrides: &std::collections::BTreeMap<String, String>,
    def: &'static defs::TopicConfigDef,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        out.push(Synonym {
            name: def.name.to_string(),
            value: Some(v.clone()),
            source: ConfigSource::DynamicTopic,
        });
    }
    match def.broker_synonym {
        Some(syn) => {
            let names = dynamic_config::synonym_names(syn);
            out.extend(dynamic_config::all_synonyms(broker, &names));
        }
        None => {
            if let Some(d) = def.default {
                out.push(Synonym {
                    name: def.name.to_string(),
                    value: Some(d.to_string()),
                    source: ConfigSource::Default,
                });
            }
        }
    }
    out.into_iter().map(to_wire).collect()
}
