//! `rafka docker-setup`: the config step of the container launchers (`/etc/kafka/docker/run`,
//! `/etc/confluent/docker/run`, `/opt/bitnami/scripts/kafka/run.sh`).
//!
//! It renders the broker's `server.properties` from the environment and mounted files the way
//! apache/kafka (`KafkaDockerWrapper setup`), confluentinc/cp-kafka (`configure`) and
//! bitnami/kafka (`libkafka.sh`) do, so compose files written for those images work with only
//! `image:` changed. The rules live in [`render`], a pure function over the environment and file
//! contents; [`main`] only reads the files, writes the result and reports.
//!
//! The rendered file is the whole configuration: the launchers start the broker with the
//! `KAFKA_*` variables removed, so nothing is applied twice under different rules (bitnami ignores
//! the environment when a config file is mounted, and its control variables such as
//! `KAFKA_CLIENT_USERS` are not properties).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use rafka_broker::config::sources;

/// apache/kafka's `configureDefaults`: the cluster id used when none is given.
pub const APACHE_DEFAULT_CLUSTER_ID: &str = "5L6g3nShT-eMCtK--X86sw";
/// cp-kafka's `KAFKA_LOG_DIRS` default.
pub const CONFLUENT_DEFAULT_LOG_DIRS: &str = "/var/lib/kafka/data";
/// bitnami/kafka's `KAFKA_DATA_DIR`.
pub const BITNAMI_DEFAULT_LOG_DIRS: &str = "/bitnami/kafka/data";
/// The file name the images look for in their mounted and default config directories.
const SERVER_PROPERTIES: &str = "server.properties";
/// Limit on a config file we read (a server.properties is a few KiB).
const CONFIG_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Whose conventions to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Flavour {
    /// bitnami when the bitnami config is mounted or any `KAFKA_CFG_*` variable is set (a
    /// bitnami compose file run through the image's default command), apache otherwise.
    Auto,
    /// apache/kafka: `/etc/kafka/docker/run`.
    Apache,
    /// confluentinc/cp-kafka: `/etc/confluent/docker/run`.
    Confluent,
    /// bitnami/kafka: `/opt/bitnami/scripts/kafka/run.sh`.
    Bitnami,
}

impl Flavour {
    fn name(self) -> &'static str {
        match self {
            Flavour::Auto => "auto",
            Flavour::Apache => "apache/kafka",
            Flavour::Confluent => "confluentinc/cp-kafka",
            Flavour::Bitnami => "bitnami/kafka",
        }
    }
}

/// Everything [`render`] looks at.
#[derive(Debug, Default)]
pub struct Inputs {
    pub env: BTreeMap<String, String>,
    /// `server.properties` from apache's mounted dir (`/mnt/shared/config`), if present.
    pub mounted: Option<String>,
    /// `server.properties` from bitnami's mounted dir (`/bitnami/kafka/config`), if present.
    pub bitnami_mounted: Option<String>,
    /// The image's default `server.properties` (apache's single-node KRaft file).
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// What [`render`] produced.
#[derive(Debug)]
pub struct Rendered {
    /// The flavour actually applied (never `Auto`).
    pub flavour: Flavour,
    /// The final properties text.
    pub properties: String,
    /// The cluster id to format new log dirs with; `None` lets the broker pick a random one.
    pub cluster_id: Option<String>,
    pub messages: Vec<(Level, String)>,
}

/// Picks the flavour for `Auto`.
pub fn detect(inputs: &Inputs) -> Flavour {
    let bitnami_env = inputs
        .env
        .keys()
        .any(|k| k.len() > "KAFKA_CFG_".len() && k.starts_with("KAFKA_CFG_"));
    if inputs.bitnami_mounted.is_some() || bitnami_env {
        Flavour::Bitnami
    } else {
        Flavour::Apache
    }
}

/// Renders the final properties for `flavour`; `Err` carries the message the image would exit
/// with.
pub fn render(flavour: Flavour, inputs: &Inputs) -> Result<Rendered, String> {
    let auto = flavour == Flavour::Auto;
    let flavour = match flavour {
        Flavour::Auto => detect(inputs),
        f => f,
    };
    let mut messages = Vec::new();
    let env_pairs = || inputs.env.iter().map(|(k, v)| (k.clone(), v.clone()));
    let (properties, cluster_id) = match flavour {
        // `detect` never answers Auto; apache is also what it falls back to.
        Flavour::Apache | Flavour::Auto => {
            let env = sources::from_env(env_pairs());
            let mut props = env.props;
            check_roles(&props, &mut messages)?;
            derive_listeners(&mut props);
            let mounted = inputs.mounted.as_deref();
            let mounted_props = mounted.map(sources::parse_properties).unwrap_or_default();
            let mounted_has_props = !mounted_props.is_empty();
            // The image's default command serves cp-kafka compose files too, and those keep
            // their data in cp's default /var/lib/kafka/data (the volume they mount); apache
            // itself would use Kafka's /tmp/kafka-logs, which no volume covers.
            let has_log_dirs = |p: &BTreeMap<String, String>| {
                p.contains_key("log.dirs") || p.contains_key("log.dir")
            };
            if auto
                && (!props.is_empty() || mounted_has_props)
                && !has_log_dirs(&props)
                && !has_log_dirs(&mounted_props)
            {
                props.insert(
                    "log.dirs".to_string(),
                    CONFLUENT_DEFAULT_LOG_DIRS.to_string(),
                );
                messages.push((
                    Level::Info,
                    format!(
                        "log.dirs not set: using {CONFLUENT_DEFAULT_LOG_DIRS} (cp-kafka's default)"
                    ),
                ));
            }
            // KafkaDockerWrapper: mounted file, then the env lines appended (later wins);
            // the default file only when neither gave anything.
            let text = if props.is_empty() && !mounted_has_props {
                match inputs.default.as_deref() {
                    Some(d) => {
                        messages.push((
                            Level::Info,
                            "no KAFKA_* settings and no mounted server.properties: using the default single-node config".to_string(),
                        ));
                        d.to_string()
                    }
                    None => {
                        return Err(
                            "no configuration given and no default server.properties".to_string()
                        )
                    }
                }
            } else {
                let mut text = String::new();
                if let Some(m) = mounted {
                    text.push_str(m);
                    if !text.is_empty() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                }
                text.push_str(&format_properties(&props));
                text
            };
            let id = env
                .cluster_id
                .unwrap_or_else(|| APACHE_DEFAULT_CLUSTER_ID.to_string());
            (text, Some(id))
        }
        Flavour::Confluent => {
            for deprecated in [
                "KAFKA_ADVERTISED_PORT",
                "KAFKA_ADVERTISED_HOST",
                "KAFKA_HOST",
                "KAFKA_PORT",
            ] {
                if inputs.env.contains_key(deprecated) {
                    return Err(format!(
                        "{deprecated} is deprecated. Please use KAFKA_ADVERTISED_LISTENERS instead."
                    ));
                }
            }
            let env = sources::from_env(env_pairs());
            let mut props = env.props;
            // cp-kafka renders CONFLUENT_SUPPORT_* into the file as confluent.support.*.
            for (k, v) in &inputs.env {
                if let Some(rest) = k.strip_prefix("CONFLUENT_SUPPORT_") {
                    let key = format!("confluent.support.{}", sources::bitnami_key(rest));
                    props.insert(key, v.clone());
                }
            }
            let controller_only = check_roles(&props, &mut messages)?;
            if !props.contains_key("process.roles") {
                messages.push((
                    Level::Warn,
                    "KAFKA_PROCESS_ROLES is not set (cp-kafka requires it); the broker decides the roles".to_string(),
                ));
            }
            if !controller_only && !props.contains_key("advertised.listeners") {
                return Err("KAFKA_ADVERTISED_LISTENERS is required.".to_string());
            }
            derive_listeners(&mut props);
            props
                .entry("log.dirs".to_string())
                .or_insert_with(|| CONFLUENT_DEFAULT_LOG_DIRS.to_string());
            if env.cluster_id.is_none() {
                messages.push((
                    Level::Warn,
                    "CLUSTER_ID is not set (cp-kafka requires it); new log dirs get a random cluster id".to_string(),
                ));
            }
            (format_properties(&props), env.cluster_id)
        }
        Flavour::Bitnami => {
            let text = if let Some(m) = inputs.bitnami_mounted.as_deref() {
                messages.push((
                    Level::Info,
                    "mounted /bitnami/kafka/config/server.properties found: environment settings are ignored (as bitnami/kafka does)".to_string(),
                ));
                m.to_string()
            } else {
                let mut props = bitnami_base(inputs.default.as_deref().unwrap_or(""));
                props.insert("log.dirs".to_string(), BITNAMI_DEFAULT_LOG_DIRS.to_string());
                props.extend(sources::from_bitnami_env(env_pairs()));
                format_properties(&props)
            };
            let id = ["KAFKA_CLUSTER_ID", "KAFKA_KRAFT_CLUSTER_ID", "CLUSTER_ID"]
                .iter()
                .filter_map(|k| inputs.env.get(*k))
                .find(|v| !v.is_empty())
                .cloned();
            if id.is_none() {
                messages.push((
                    Level::Warn,
                    "KAFKA_KRAFT_CLUSTER_ID not set - If using multiple nodes then you must use the same Cluster ID for each one; new log dirs get a random cluster id".to_string(),
                ));
            }
            (text, id)
        }
    };
    Ok(Rendered {
        flavour,
        properties,
        cluster_id,
        messages,
    })
}

/// The image serves metrics, health and the status page on 9404 (the port it exposes) unless
/// the configuration names `http.listener` itself (`KAFKA_HTTP_LISTENER=` empty turns it off).
/// The plain binary keeps it off: zero-config runs open no extra port. Applied to the file the
/// image writes, after the translation of the replaced images' conventions ([`render`]).
fn with_http_listener(mut properties: String) -> String {
    if sources::parse_properties(&properties).contains_key(HTTP_LISTENER_KEY) {
        return properties;
    }
    if !properties.is_empty() && !properties.ends_with('\n') {
        properties.push('\n');
    }
    properties.push_str(&format!("{HTTP_LISTENER_KEY}={IMAGE_HTTP_LISTENER}\n"));
    properties
}

const HTTP_LISTENER_KEY: &str = "http.listener";
/// Strimzi's metrics port, where Kafka-on-Kubernetes scrape configs already look.
const IMAGE_HTTP_LISTENER: &str = "0.0.0.0:9404";

/// apache/cp `configure`: a controller-only node must not advertise listeners. Returns whether
/// the node is controller-only.
fn check_roles(
    props: &BTreeMap<String, String>,
    messages: &mut Vec<(Level, String)>,
) -> Result<bool, String> {
    let Some(roles) = props.get("process.roles") else {
        return Ok(false);
    };
    messages.push((Level::Info, "Running in KRaft mode...".to_string()));
    let controller_only = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .all(|r| r == "controller")
        && roles.contains("controller");
    if controller_only && props.contains_key("advertised.listeners") {
        return Err(
            "KAFKA_ADVERTISED_LISTENERS is not supported on a KRaft controller.".to_string(),
        );
    }
    Ok(controller_only)
}

/// apache/cp: `listeners` unset and `advertised.listeners` set -> the advertised ports on
/// `0.0.0.0` (a controller-only node has no advertised listeners, see [`check_roles`]).
fn derive_listeners(props: &mut BTreeMap<String, String>) {
    if props.contains_key("listeners") {
        return;
    }
    if let Some(adv) = props.get("advertised.listeners") {
        let derived = sources::listeners_from_advertised(adv);
        props.insert("listeners".to_string(), derived);
    }
}

/// bitnami starts from Kafka's stock server.properties with the node-specific lines commented
/// out (`kafka_server_unify_conf`), so settings such as the internal topics' replication factor
/// of 1 still apply when the compose file does not set them.
fn bitnami_base(default: &str) -> BTreeMap<String, String> {
    const DROPPED_PREFIXES: &[&str] = &[
        "zookeeper.",
        "node.",
        "process.",
        "listener.",
        "controller.",
        "inter.broker",
        "group.initial",
    ];
    const DROPPED_KEYS: &[&str] = &["listeners", "advertised.listeners"];
    sources::parse_properties(default)
        .into_iter()
        .filter(|(k, _)| {
            !DROPPED_KEYS.contains(&k.as_str())
                && !DROPPED_PREFIXES.iter().any(|p| k.starts_with(p))
        })
        .collect()
}

/// Java properties text, one `key=value` line each, escaped so that reading it back gives the
/// exact key and value (values from the environment are taken verbatim, as the images do).
pub fn format_properties(props: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (k, v) in props {
        out.push_str(&escape(k, true));
        out.push('=');
        out.push_str(&escape(v, false));
        out.push('\n');
    }
    out
}

fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '=' | ':' if is_key => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '#' | '!' if is_key && i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[derive(Debug, Parser)]
#[command(
    name = "rafka docker-setup",
    about = "Render server.properties from the environment the way the apache/kafka, cp-kafka or bitnami/kafka image would, and print the cluster id to format new log dirs with"
)]
struct SetupCli {
    /// Whose conventions to follow.
    #[arg(long, value_enum, default_value = "auto")]
    flavour: Flavour,
    /// Holds the default server.properties (used by apache when nothing is given; bitnami's base).
    #[arg(long, default_value = "/etc/kafka/docker")]
    default_configs_dir: PathBuf,
    /// apache/kafka's mounted config dir; its server.properties comes before the env lines.
    #[arg(long, default_value = "/mnt/shared/config")]
    mounted_configs_dir: PathBuf,
    /// bitnami/kafka's mounted config dir; its server.properties replaces the environment.
    #[arg(long, default_value = "/bitnami/kafka/config")]
    bitnami_configs_dir: PathBuf,
    /// Where to write the result.
    #[arg(long)]
    final_config: PathBuf,
}

/// Reads `dir/server.properties` if it exists.
fn read_optional(dir: &Path) -> Result<Option<String>, String> {
    let path = dir.join(SERVER_PROPERTIES);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if meta.len() > CONFIG_FILE_BYTES_MAX {
        return Err(format!(
            "{} is {} bytes, more than the {CONFIG_FILE_BYTES_MAX} bytes a config file may have",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn setup(cli: &SetupCli) -> Result<Rendered, String> {
    let inputs = Inputs {
        env: std::env::vars().collect(),
        mounted: read_optional(&cli.mounted_configs_dir)?,
        bitnami_mounted: read_optional(&cli.bitnami_configs_dir)?,
        default: read_optional(&cli.default_configs_dir)?,
    };
    let mut rendered = render(cli.flavour, &inputs)?;
    rendered.properties = with_http_listener(std::mem::take(&mut rendered.properties));
    write_atomically(&cli.final_config, &rendered.properties)?;
    Ok(rendered)
}

/// `rafka docker-setup ARGS`: writes the final config and prints the cluster id (an empty line
/// when there is none) on stdout; notes go to stderr.
pub fn main(args: impl Iterator<Item = OsString>) -> ExitCode {
    let cli =
        match SetupCli::try_parse_from(std::iter::once(OsString::from("docker-setup")).chain(args))
        {
            Ok(c) => c,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
        };
    match setup(&cli) {
        Ok(r) => {
            eprintln!(
                "[docker-setup] following {} conventions; wrote {}",
                r.flavour.name(),
                cli.final_config.display()
            );
            for (level, text) in &r.messages {
                let tag = match level {
                    Level::Info => "INFO",
                    Level::Warn => "WARN",
                };
                eprintln!("[docker-setup] {tag} {text}");
            }
            println!("{}", r.cluster_id.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("[docker-setup] ERROR {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "# comment\nprocess.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@localhost:9093\nlisteners=PLAINTEXT://:9092,CONTROLLER://:9093\ninter.broker.listener.name=PLAINTEXT\nadvertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\ncontroller.listener.names=CONTROLLER\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\nlog.dirs=/tmp/kraft-combined-logs\noffsets.topic.replication.factor=1\ngroup.initial.rebalance.delay.ms=0\nnum.partitions=1\n";

    fn inputs(env: &[(&str, &str)]) -> Inputs {
        Inputs {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            default: Some(DEFAULT.to_string()),
            ..Inputs::default()
        }
    }

    fn props(r: &Rendered) -> BTreeMap<String, String> {
        sources::parse_properties(&r.properties)
    }

    fn get<'a>(p: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
        p.get(k).map(String::as_str)
    }

    #[test]
    fn the_image_serves_http_on_9404_unless_told_otherwise() {
        let r = render(Flavour::Apache, &inputs(&[])).expect("renders");
        let with = with_http_listener(r.properties);
        assert!(with.ends_with("num.partitions=1\nhttp.listener=0.0.0.0:9404\n"));
        let r = render(
            Flavour::Apache,
            &inputs(&[("KAFKA_HTTP_LISTENER", ""), ("KAFKA_NODE_ID", "1")]),
        )
        .expect("renders");
        let off = with_http_listener(r.properties);
        assert_eq!(
            sources::parse_properties(&off)
                .get("http.listener")
                .map(String::as_str),
            Some("")
        );
        let r = render(
            Flavour::Bitnami,
            &inputs(&[("KAFKA_CFG_HTTP_LISTENER", "0.0.0.0:9999")]),
        )
        .expect("renders");
        let own = with_http_listener(r.properties);
        assert_eq!(
            sources::parse_properties(&own)
                .get("http.listener")
                .map(String::as_str),
            Some("0.0.0.0:9999")
        );
        assert_eq!(
            with_http_listener("node.id=3".into()),
            "node.id=3\nhttp.listener=0.0.0.0:9404\n"
        );
    }

    #[test]
    fn apache_nothing_given_uses_default_file_and_cluster_id() {
        let r = render(
            Flavour::Apache,
            &inputs(&[("PATH", "/bin"), ("HOSTNAME", "x")]),
        )
        .unwrap();
        assert_eq!(r.properties, DEFAULT);
        assert_eq!(r.cluster_id.as_deref(), Some(APACHE_DEFAULT_CLUSTER_ID));
    }

    #[test]
    fn apache_env_only_does_not_merge_with_default() {
        let r = render(
            Flavour::Apache,
            &inputs(&[
                ("KAFKA_NODE_ID", "1"),
                ("KAFKA_ABC__DEF", "x"),
                ("KAFKA_ABC___DEF", "y"),
                ("KAFKA_KAFKA_X", "z"),
                ("KAFKA_HEAP_OPTS", "-Xmx1G"),
                ("KAFKA_JMX_OPTS", "j"),
                ("KAFKA_LOG4J_LOGGERS", "a=INFO"),
                ("CLUSTER_ID", "4L6g3nShT-eMCtK--X86sw"),
            ]),
        )
        .unwrap();
        let p = props(&r);
        assert_eq!(get(&p, "node.id"), Some("1"));
        assert_eq!(get(&p, "abc_def"), Some("x"));
        assert_eq!(get(&p, "abc-def"), Some("y"));
        assert_eq!(get(&p, "kafka.x"), Some("z"));
        assert_eq!(p.len(), 4, "{p:?}");
        assert_eq!(r.cluster_id.as_deref(), Some("4L6g3nShT-eMCtK--X86sw"));
    }

    #[test]
    fn apache_bitnami_cluster_id_spellings() {
        let r = render(
            Flavour::Apache,
            &inputs(&[("KAFKA_KRAFT_CLUSTER_ID", "k"), ("KAFKA_NODE_ID", "1")]),
        )
        .unwrap();
        assert_eq!(r.cluster_id.as_deref(), Some("k"));
        assert!(!props(&r).contains_key("kraft.cluster.id"));
        let r = render(
            Flavour::Apache,
            &inputs(&[("KAFKA_CLUSTER_ID", "c"), ("KAFKA_NODE_ID", "1")]),
        )
        .unwrap();
        assert_eq!(r.cluster_id.as_deref(), Some("c"));
    }

    #[test]
    fn apache_values_are_verbatim_and_round_trip() {
        let v = " a\\b=c:d #e ";
        let r = render(Flavour::Apache, &inputs(&[("KAFKA_SASL_JAAS_CONFIG", v)])).unwrap();
        assert_eq!(get(&props(&r), "sasl.jaas.config"), Some(v));
    }

    #[test]
    fn apache_listeners_derived_from_advertised() {
        let r = render(
            Flavour::Apache,
            &inputs(&[
                ("KAFKA_PROCESS_ROLES", "broker,controller"),
                (
                    "KAFKA_ADVERTISED_LISTENERS",
                    "PLAINTEXT://broker:29092,PLAINTEXT_HOST://localhost:9092",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            get(&props(&r), "listeners"),
            Some("PLAINTEXT://0.0.0.0:29092,PLAINTEXT_HOST://0.0.0.0:9092")
        );
        assert!(r
            .messages
            .iter()
            .any(|(_, m)| m == "Running in KRaft mode..."));
        // Explicit listeners are kept.
        let r = render(
            Flavour::Apache,
            &inputs(&[
                ("KAFKA_LISTENERS", "PLAINTEXT://broker:29092"),
                ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://broker:29092"),
            ]),
        )
        .unwrap();
        assert_eq!(
            get(&props(&r), "listeners"),
            Some("PLAINTEXT://broker:29092")
        );
    }

    #[test]
    fn apache_controller_only() {
        let e = render(
            Flavour::Apache,
            &inputs(&[
                ("KAFKA_PROCESS_ROLES", "controller"),
                ("KAFKA_ADVERTISED_LISTENERS", "CONTROLLER://c:9093"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "KAFKA_ADVERTISED_LISTENERS is not supported on a KRaft controller."
        );
        // The isolated-controller example: no advertised listeners, nothing derived.
        let r = render(
            Flavour::Apache,
            &inputs(&[
                ("KAFKA_PROCESS_ROLES", "controller"),
                ("KAFKA_LISTENERS", "CONTROLLER://:9093"),
            ]),
        )
        .unwrap();
        assert_eq!(get(&props(&r), "listeners"), Some("CONTROLLER://:9093"));
    }

    #[test]
    fn apache_mounted_file_then_env_appended() {
        let mut i = inputs(&[("KAFKA_NODE_ID", "5")]);
        i.mounted = Some("node.id=2\nlog.dirs=/m".to_string());
        let r = render(Flavour::Apache, &i).unwrap();
        assert_eq!(r.properties, "node.id=2\nlog.dirs=/m\nnode.id=5\n");
        let p = props(&r);
        assert_eq!(get(&p, "node.id"), Some("5"), "later line wins");
        assert_eq!(get(&p, "log.dirs"), Some("/m"));
        // Mounted file alone: no default mixed in.
        let mut i = inputs(&[]);
        i.mounted = Some("node.id=2\n".to_string());
        assert_eq!(
            render(Flavour::Apache, &i).unwrap().properties,
            "node.id=2\n"
        );
        // An empty mounted file counts as nothing given.
        let mut i = inputs(&[]);
        i.mounted = Some("# nothing\n".to_string());
        assert_eq!(render(Flavour::Apache, &i).unwrap().properties, DEFAULT);
    }

    #[test]
    fn apache_without_default_file_and_no_config_fails() {
        let i = Inputs::default();
        assert!(render(Flavour::Apache, &i).is_err());
    }

    #[test]
    fn confluent_rules() {
        let r = render(
            Flavour::Confluent,
            &inputs(&[
                ("KAFKA_PROCESS_ROLES", "broker,controller"),
                ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://broker:29092"),
                ("CONFLUENT_SUPPORT_CUSTOMER_ID", "anon"),
                ("KAFKA_JMX_PORT", "9101"),
                ("CLUSTER_ID", "MkU3OEVBNTcwNTJENDM2Qk"),
            ]),
        )
        .unwrap();
        let p = props(&r);
        assert_eq!(get(&p, "log.dirs"), Some(CONFLUENT_DEFAULT_LOG_DIRS));
        assert_eq!(get(&p, "listeners"), Some("PLAINTEXT://0.0.0.0:29092"));
        assert_eq!(get(&p, "confluent.support.customer.id"), Some("anon"));
        assert_eq!(r.cluster_id.as_deref(), Some("MkU3OEVBNTcwNTJENDM2Qk"));
        // No default file, no apache default cluster id.
        let r = render(
            Flavour::Confluent,
            &inputs(&[
                ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://b:9092"),
                ("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs"),
            ]),
        )
        .unwrap();
        assert_eq!(
            get(&props(&r), "log.dirs"),
            Some("/tmp/kraft-combined-logs")
        );
        assert_eq!(r.cluster_id, None);
        assert!(r
            .messages
            .iter()
            .any(|(l, m)| *l == Level::Warn && m.contains("CLUSTER_ID")));
    }

    #[test]
    fn confluent_refusals() {
        let e = render(Flavour::Confluent, &inputs(&[("KAFKA_NODE_ID", "1")])).unwrap_err();
        assert_eq!(e, "KAFKA_ADVERTISED_LISTENERS is required.");
        let e = render(
            Flavour::Confluent,
            &inputs(&[
                ("KAFKA_ADVERTISED_PORT", "9092"),
                ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://b:9092"),
            ]),
        )
        .unwrap_err();
        assert!(e.starts_with("KAFKA_ADVERTISED_PORT is deprecated"), "{e}");
        // A controller-only node needs no advertised listeners.
        let r = render(
            Flavour::Confluent,
            &inputs(&[
                ("KAFKA_PROCESS_ROLES", "controller"),
                ("KAFKA_LISTENERS", "CONTROLLER://:9093"),
            ]),
        );
        assert!(r.is_ok());
    }

    #[test]
    fn bitnami_env_on_top_of_trimmed_default() {
        let r = render(
            Flavour::Bitnami,
            &inputs(&[
                ("KAFKA_CFG_NODE_ID", "0"),
                ("KAFKA_CFG_PROCESS_ROLES", "controller,broker"),
                (
                    "KAFKA_CFG_LISTENERS",
                    "PLAINTEXT://:9092,CONTROLLER://:9093",
                ),
                ("KAFKA_CFG_ADVERTISED_LISTENERS", "PLAINTEXT://:9092"),
                ("KAFKA_CFG_CONTROLLER_QUORUM_VOTERS", "0@kafka:9093"),
                ("KAFKA_CLIENT_USERS", "user"),
                ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
                ("ALLOW_PLAINTEXT_LISTENER", "yes"),
            ]),
        )
        .unwrap();
        let p = props(&r);
        assert_eq!(get(&p, "log.dirs"), Some(BITNAMI_DEFAULT_LOG_DIRS));
        assert_eq!(get(&p, "node.id"), Some("0"));
        assert_eq!(get(&p, "advertised.listeners"), Some("PLAINTEXT://:9092"));
        // From the default file: kept general settings, dropped node-specific ones.
        assert_eq!(get(&p, "offsets.topic.replication.factor"), Some("1"));
        assert_eq!(get(&p, "num.partitions"), Some("1"));
        assert!(!p.contains_key("inter.broker.listener.name"));
        assert!(!p.contains_key("listener.security.protocol.map"));
        assert!(!p.contains_key("controller.listener.names"));
        // Control variables and non-alias KAFKA_* are not properties in bitnami.
        assert!(!p.contains_key("client.users"));
        assert!(!p.contains_key("group.initial.rebalance.delay.ms"));
        assert_eq!(r.cluster_id, None);
    }

    #[test]
    fn bitnami_aliases_and_cluster_id() {
        let r = render(
            Flavour::Bitnami,
            &inputs(&[
                ("KAFKA_CFG_NODE_ID", "1"),
                ("KAFKA_LOGS_DIRS", "/x"),
                ("KAFKA_KRAFT_CLUSTER_ID", "abcdefghijklmnopqrstuv"),
                ("KAFKA_CLUSTER_ID", "cluster-id-wins-over-kraft"),
            ]),
        )
        .unwrap();
        assert_eq!(get(&props(&r), "log.dirs"), Some("/x"));
        assert_eq!(r.cluster_id.as_deref(), Some("cluster-id-wins-over-kraft"));
    }

    #[test]
    fn bitnami_mounted_file_ignores_env() {
        let mut i = inputs(&[("KAFKA_CFG_NODE_ID", "9")]);
        i.bitnami_mounted = Some("node.id=3\n".to_string());
        let r = render(Flavour::Bitnami, &i).unwrap();
        assert_eq!(r.properties, "node.id=3\n");
    }

    #[test]
    fn auto_detection() {
        assert_eq!(detect(&inputs(&[("KAFKA_NODE_ID", "1")])), Flavour::Apache);
        assert_eq!(
            detect(&inputs(&[("KAFKA_CFG_NODE_ID", "1")])),
            Flavour::Bitnami
        );
        let mut i = inputs(&[]);
        i.bitnami_mounted = Some(String::new());
        assert_eq!(detect(&i), Flavour::Bitnami);
        assert_eq!(detect(&inputs(&[])), Flavour::Apache);
        let r = render(Flavour::Auto, &inputs(&[("KAFKA_CFG_NODE_ID", "1")])).unwrap();
        assert_eq!(r.flavour, Flavour::Bitnami);
    }

    #[test]
    fn auto_apache_defaults_log_dirs_like_cp() {
        let r = render(Flavour::Auto, &inputs(&[("KAFKA_NODE_ID", "1")])).unwrap();
        assert_eq!(
            get(&props(&r), "log.dirs"),
            Some(CONFLUENT_DEFAULT_LOG_DIRS)
        );
        let r = render(
            Flavour::Auto,
            &inputs(&[("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs")]),
        )
        .unwrap();
        assert_eq!(
            get(&props(&r), "log.dirs"),
            Some("/tmp/kraft-combined-logs")
        );
        let mut i = inputs(&[("KAFKA_NODE_ID", "1")]);
        i.mounted = Some("log.dir=/m\n".to_string());
        let r = render(Flavour::Auto, &i).unwrap();
        assert!(!props(&r).contains_key("log.dirs"));
        // Nothing given: the default file, untouched.
        assert_eq!(
            render(Flavour::Auto, &inputs(&[])).unwrap().properties,
            DEFAULT
        );
        // Explicit apache: Kafka's own default applies (no line written).
        let r = render(Flavour::Apache, &inputs(&[("KAFKA_NODE_ID", "1")])).unwrap();
        assert!(!props(&r).contains_key("log.dirs"));
    }

    #[test]
    fn keys_are_escaped() {
        let mut m = BTreeMap::new();
        m.insert("#a b=c".to_string(), "\tv\n".to_string());
        let text = format_properties(&m);
        assert_eq!(sources::parse_properties(&text), m);
    }
}
