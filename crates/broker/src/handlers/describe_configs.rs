//! DescribeConfigs (key 32): topic configs (overrides over broker values over defaults) and the
//! broker's configs, each with its source, synonyms (when asked), type and documentation.

use std::sync::Arc;

use rafka_protocol::kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use rafka_protocol::kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use rafka_protocol::kafka_protocol::protocol::StrBytes;
use rafka_protocol::kafka_protocol::ResponseError;

use crate::config::defs::{self, ConfigType};
use crate::node::Shared;
use crate::topic_config::{self, ConfigSource};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

pub fn handle(
    shared: &Arc<Shared>,
    request: DescribeConfigsRequest,
    _version: i16,
) -> DescribeConfigsResponse {
    let mut results = Vec::with_capacity(request.resources.len());
    for res in request.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let keys: Option<Vec<String>> = res
            .configuration_keys
            .as_ref()
            .map(|k| k.iter().map(|s| s.to_string()).collect());
        let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|x| x == name));
        match res.resource_type {
            RESOURCE_TOPIC => {
                let image = shared.image();
                match image.topic_by_name(res.resource_name.as_str()) {
                    None => {
                        r.error_code = ResponseError::UnknownTopicOrPartition.code();
                        r.error_message = Some(StrBytes::from_string(format!(
                            "Topic '{}' does not exist.",
                            res.resource_name.as_str()
                        )));
                    }
                    Some(topic) => {
                        for rc in topic_config::resolve_all(&shared.config, &topic.configs) {
                            if !wanted(rc.def.name) {
                                continue;
                            }
                            let mut c =
                                entry(rc.def.name, rc.value.clone(), rc.source, rc.def.ty, false);
                            if request.include_synonyms {
                                c.synonyms = topic_synonyms(shared, &topic.configs, rc.def);
                            }
                            if request.include_documentation {
                                c.documentation = Some(StrBytes::from_static_str(rc.def.doc));
                            }
                            r.configs.push(c);
                        }
                    }
                }
            }
            RESOURCE_BROKER => {
                let name = res.resource_name.as_str();
                if name.is_empty() {
                    // The cluster-wide dynamic defaults: none can be set yet, so there are none.
                } else if name != shared.node_id.to_string() {
                    r.error_code = ResponseError::InvalidRequest.code();
                    r.error_message = Some(StrBytes::from_string(format!(
                        "Unexpected broker id, expected {} but received {name}",
                        shared.node_id
                    )));
                } else {
                    for d in defs::BROKER_CONFIGS {
                        if !wanted(d.name) {
                            continue;
                        }
                        let source = if shared.config.explicit.contains_key(d.name) {
                            ConfigSource::StaticBroker
                        } else {
                            ConfigSource::Default
                        };
                        let mut c = entry(
                            d.name,
                            shared.config.value_of(d.name),
                            source,
                            d.ty,
                            !d.dynamic,
                        );
                        if request.include_synonyms {
                            c.synonyms =
                                vec![synonym(d.name, shared.config.value_of(d.name), source)];
                        }
                        if request.include_documentation {
                            c.documentation = Some(StrBytes::from_static_str(d.doc));
                        }
                        r.configs.push(c);
                    }
                }
            }
            RESOURCE_BROKER_LOGGER => {
                r.error_code = ResponseError::InvalidRequest.code();
                r.error_message = Some(StrBytes::from_static_str(
                    "broker loggers are configured with RUST_LOG, not through DescribeConfigs",
                ));
            }
            other => {
                r.error_code = ResponseError::InvalidRequest.code();
                r.error_message = Some(StrBytes::from_string(format!(
                    "unsupported resource type {other}"
                )));
            }
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
    c.name = StrBytes::from_static_str(name);
    c.value = value.map(StrBytes::from_string);
    c.read_only = read_only;
    c.config_source = source as i8;
    c.is_sensitive = ty == ConfigType::Password;
    c.config_type = ty.describe_code();
    c
}

fn synonym(name: &str, value: Option<String>, source: ConfigSource) -> DescribeConfigsSynonym {
    let mut s = DescribeConfigsSynonym::default();
    s.name = StrBytes::from_string(name.to_string());
    s.value = value.map(StrBytes::from_string);
    s.source = source as i8;
    s
}

/// Kafka lists, most specific first: the topic override, the broker's static value, the default.
fn topic_synonyms(
    shared: &Arc<Shared>,
    overrides: &std::collections::BTreeMap<String, String>,
    def: &'static defs::TopicConfigDef,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        out.push(synonym(
            def.name,
            Some(v.clone()),
            ConfigSource::DynamicTopic,
        ));
    }
    if let Some(syn) = def.broker_synonym {
        if let Some(v) = shared.config.explicit.get(syn) {
            out.push(synonym(syn, Some(v.clone()), ConfigSource::StaticBroker));
        }
        if let Some(d) = defs::broker_def(syn).and_then(|d| d.default) {
            out.push(synonym(syn, Some(d.to_string()), ConfigSource::Default));
        }
    } else if let Some(d) = def.default {
        out.push(synonym(
            def.name,
            Some(d.to_string()),
            ConfigSource::Default,
        ));
    }
    out
}
