//! Elastic Cloud ids and API keys, as Elastic documents them.
//!
//! A Cloud ID is `name:base64(host[:port]$es_id[:port][$kibana_id[:port]])`; the Elasticsearch
//! endpoint is `https://<es_id>.<host>:<port>`, port 443 unless given. An API key is `id:key`
//! (sent as `ApiKey base64(id:key)`), its base64 form, or an `essu_` key (both sent as they are).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A decoded Cloud ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// The deployment name (before the colon).
    pub name: String,
    /// The Elasticsearch URL.
    pub elasticsearch: String,
    /// The Kibana URL, when the id names one.
    pub kibana: Option<String>,
}

fn split_port(part: &str) -> (&str, Option<&str>) {
    match part.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
            (host, Some(port))
        }
        _ => (part, None),
    }
}

/// Decodes a Cloud ID.
pub fn decode(cloud_id: &str) -> Result<CloudEndpoints, String> {
    let (name, data) = cloud_id
        .split_once(':')
        .ok_or("a Cloud ID is `name:base64`, with a colon")?;
    let decoded = STANDARD
        .decode(data.trim())
        .map_err(|e| format!("its second part is not base64 ({e})"))?;
    let text = String::from_utf8(decoded).map_err(|_| "it does not decode to text")?;
    let mut parts = text.split('$');
    let (host, host_port) = split_port(parts.next().unwrap_or_default());
    let es = parts
        .next()
        .filter(|s| !s.is_empty())
        .ok_or("it names no Elasticsearch id")?;
    if host.is_empty() {
        return Err("it names no host".into());
    }
    let url = |part: &str| {
        let (id, port) = split_port(part);
        format!(
            "https://{id}.{host}:{}",
            port.or(host_port).unwrap_or("443")
        )
    };
    Ok(CloudEndpoints {
        name: name.to_owned(),
        elasticsearch: url(es),
        kibana: parts.next().filter(|s| !s.is_empty()).map(url),
    })
}

/// The `Authorization` header value of an API key in any of its forms.
pub fn api_key_header(key: &str) -> String {
    match key.split_once(':') {
        Some((id, secret)) if !key.starts_with("essu_") => {
            format!("ApiKey {}", STANDARD.encode(format!("{id}:{secret}")))
        }
        _ => format!("ApiKey {key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elastic_documented_cloud_ids() {
        // The example of Elastic's Beats and Logstash documentation.
        let id = "staging:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==";
        let d = decode(id).unwrap();
        assert_eq!(d.name, "staging");
        assert_eq!(
            d.elasticsearch,
            "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io:443"
        );
        assert_eq!(
            d.kibana.as_deref(),
            Some("https://c6c2ca6d042249af0cc7d7a9e9625743.us-east-1.aws.found.io:443")
        );
        // A port on the host applies to both; a port on a component to that one only.
        let with_port = format!(
            "x:{}",
            STANDARD.encode("us-east-1.aws.found.io:9243$es1$kb1")
        );
        assert_eq!(
            decode(&with_port).unwrap().elasticsearch,
            "https://es1.us-east-1.aws.found.io:9243"
        );
        let per_part = format!("x:{}", STANDARD.encode("host.io$es1:9200$kb1:5601"));
        let d = decode(&per_part).unwrap();
        assert_eq!(d.elasticsearch, "https://es1.host.io:9200");
        assert_eq!(d.kibana.as_deref(), Some("https://kb1.host.io:5601"));
        assert!(decode("no-colon").is_err());
        assert!(decode("x:!!!").is_err());
        assert!(decode(&format!("x:{}", STANDARD.encode("host.io"))).is_err());
    }

    #[test]
    fn api_key_forms() {
        // Elastic's example: id `VuaCfGcBCdbkQm-e5aOx`, key `ui2lp2axTNmsyakw9tvNnw`.
        let header = api_key_header("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw");
        assert_eq!(
            header,
            "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
        );
        assert_eq!(
            api_key_header("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="),
            header
        );
        assert_eq!(api_key_header("essu_abc123"), "ApiKey essu_abc123");
    }
}
