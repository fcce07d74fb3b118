//! `target_info`: the service's resource attributes as labels of a constant gauge, the way the
//! OpenTelemetry Prometheus exporter writes them (`service.name` becomes `service_name`).

use super::encode::{LabelList, Writer};

/// Turns an attribute key into a Prometheus label name: every character outside
/// `[a-zA-Z0-9_]` becomes `_`, a leading digit gets a `key_` prefix, and a leading `__`
/// (reserved by Prometheus) gets one too. `None` for an empty key.
pub(crate) fn sanitize_label_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.starts_with("__") {
        s.insert_str(0, "key_");
    }
    Some(s)
}

/// The label list of `target_info`, rendered once at construction. Keys that collide after
/// sanitising (`a.b` and `a_b`) have their values joined with `;` in key order, as the
/// OpenTelemetry specification asks.
pub(crate) fn render(attrs: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut sorted: Vec<&(String, String)> = attrs.iter().collect();
    sorted.sort();
    for (k, v) in sorted {
        let Some(name) = sanitize_label_name(k) else {
            continue;
        };
        match pairs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(';');
                existing.push_str(v);
            }
            None => pairs.push((name, v.clone())),
        }
    }
    let mut l = LabelList::default();
    for (k, v) in &pairs {
        l.push(k, v);
    }
    l.finish()
}

pub(crate) fn write(w: &mut Writer<'_>, labels: &str) {
    if labels.is_empty() {
        return;
    }
    w.header(
        "target_info",
        "Target metadata: the service's resource attributes",
        super::encode::Kind::Gauge,
    );
    w.sample("target_info", labels, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_label_names() {
        assert_eq!(sanitize_label_name("service.name").unwrap(), "service_name");
        assert_eq!(
            sanitize_label_name("deployment.environment.name").unwrap(),
            "deployment_environment_name"
        );
        assert_eq!(sanitize_label_name("9lives").unwrap(), "key_9lives");
        assert_eq!(sanitize_label_name("__x").unwrap(), "key___x");
        assert_eq!(sanitize_label_name("k8s-pod/ü").unwrap(), "k8s_pod__");
        assert!(sanitize_label_name("").is_none());
    }

    #[test]
    fn colliding_keys_are_joined() {
        let attrs = vec![
            ("a_b".to_string(), "2".to_string()),
            ("a.b".to_string(), "1".to_string()),
        ];
        assert_eq!(render(&attrs), r#"a_b="1;2""#);
    }
}
