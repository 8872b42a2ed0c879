//! Kafka's listener syntax: `NAME://host:port` entries, IPv6 hosts in brackets, and the
//! `listener.security.protocol.map` that gives each (arbitrary) name its protocol.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// A protocol by its name, case-insensitively (a listener named after one needs no map entry).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The listener name (`PLAINTEXT`, `PLAINTEXT_HOST`, `TC-0`, ...).
    pub name: String,
    /// The host as written; empty means every interface. IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub protocol: SecurityProtocol,
}

impl Listener {
    /// What to advertise for a bound listener when `advertised.listeners` does not say: a wildcard
    /// or empty host becomes `localhost` (a client cannot connect to 0.0.0.0).
    pub fn advertised_default(&self) -> Listener {
        let host = match self.host.as_str() {
            "" | "0.0.0.0" | "::" => "localhost".to_string(),
            h => h.to_string(),
        };
        Listener {
            host,
            ..self.clone()
        }
    }

    /// The address to bind: empty host means all interfaces (IPv6 dual-stack where available is
    /// not assumed; Kafka binds 0.0.0.0 for an empty host).
    pub fn bind_host(&self) -> &str {
        if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

pub fn parse_protocol_map(text: &str) -> Result<BTreeMap<String, SecurityProtocol>, String> {
    let mut map = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, proto) = entry
            .split_once(':')
            .ok_or_else(|| format!("entry {entry:?} is not NAME:PROTOCOL"))?;
        let proto = SecurityProtocol::parse(proto)
            .ok_or_else(|| format!("unknown security protocol {proto:?}"))?;
        map.insert(name.trim().to_string(), proto);
    }
    Ok(map)
}

pub fn parse_listeners(
    text: &str,
    protocol_map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, String> {
    let mut out: Vec<Listener> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("listener {entry:?} is not NAME://host:port"))?;
        let (host, port) = if let Some(rest) = rest.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("listener {entry:?}: bad IPv6 address"))?;
            (h.to_string(), p)
        } else {
            let (h, p) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("listener {entry:?} has no port"))?;
            (h.to_string(), p)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("listener {entry:?}: bad port {port:?}"))?;
        // A name that is itself a protocol needs no map entry, as in Kafka.
        let protocol = protocol_map
            .get(name)
            .copied()
            .or_else(|| SecurityProtocol::parse(name))
            .ok_or_else(|| {
                format!("listener name {name} is not in listener.security.protocol.map")
            })?;
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener name {name} appears twice"));
        }
        out.push(Listener {
            name: name.to_string(),
            host,
            port,
            protocol,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_map() -> BTreeMap<String, SecurityProtocol> {
        parse_protocol_map("PLAINTEXT:PLAINTEXT,TC-0:PLAINTEXT,BROKER:PLAINTEXT").expect("valid")
    }

    #[test]
    fn parses_names_hosts_and_ipv6() {
        let l = parse_listeners(
            "PLAINTEXT://:9092,TC-0://[::1]:19092,BROKER://kafka:29092",
            &default_map(),
        )
        .expect("valid");
        assert_eq!(l[0].host, "");
        assert_eq!(l[1].name, "TC-0");
        assert_eq!(l[1].host, "::1");
        assert_eq!(l[1].to_string(), "TC-0://[::1]:19092");
        assert_eq!(l[2].host, "kafka");
        assert_eq!(l[2].port, 29092);
    }

    #[test]
    fn rejects_unmapped_names_and_bad_ports() {
        assert!(parse_listeners("FOO://:1", &default_map()).is_err());
        assert!(parse_listeners("PLAINTEXT://:99999", &default_map()).is_err());
        assert!(parse_listeners("PLAINTEXT:9092", &default_map()).is_err());
    }
}
