//! What a container process gets: its argv (command + args, or the built-in echo on its
//! ports) and its environment (the spec's values and fieldRefs, plus POD_NAME, POD_NAMESPACE,
//! POD_IP and NODE_NAME always).

use std::net::Ipv4Addr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

/// What fieldRefs and the fixed variables resolve against.
#[derive(Debug, Clone)]
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub pod_ip: Ipv4Addr,
    pub node_name: &'a str,
    pub host_ip: Ipv4Addr,
}

/// A fieldRef's value (the downward API subset the kubelet resolves); None when unsupported.
pub fn field_value(facts: &PodFacts, path: &str) -> Option<String> {
    let meta = &facts.pod.metadata;
    let spec = facts.pod.spec.as_ref();
    let in_map = |map: &Option<std::collections::BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone().or(Some("default".into())),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => Some(facts.node_name.to_string()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .or(Some(String::new())),
        "status.podIP" | "status.podIPs" => Some(facts.pod_ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some(facts.host_ip.to_string()),
        _ => in_map(&meta.labels, "metadata.labels['").or_else(|| in_map(&meta.annotations, "metadata.annotations['")),
    }
}

/// Expands `$(NAME)` references to variables in `env` the way the kubelet does: `$$` is a
/// literal `$`, and a reference to an unknown name (or an unclosed one) stays as written.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match env.iter().rev().find(|(n, _)| n == name) {
                        Some((_, value)) => out.push_str(value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[at..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment, in order; later entries win, and values may refer to
/// earlier ones with `$(NAME)`.
pub fn container_env(facts: &PodFacts, container: &Container) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "POD_NAME".to_string(),
            facts.pod.metadata.name.clone().unwrap_or_default(),
        ),
        (
            "POD_NAMESPACE".to_string(),
            facts.pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        ),
        ("POD_IP".to_string(), facts.pod_ip.to_string()),
        ("NODE_NAME".to_string(), facts.node_name.to_string()),
    ];
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => expand(var.value.as_deref().unwrap_or_default(), &env),
            Some(source) => match source
                .field_ref
                .as_ref()
                .and_then(|f| field_value(facts, &f.field_path))
            {
                Some(value) => value,
                None => continue,
            },
        };
        env.retain(|(name, _)| name != &var.name);
        env.push((var.name.clone(), value));
    }
    env
}

/// The container's argv: command + args with `$(NAME)` expanded from its environment, or
/// `<exe> echo --port P/proto...` without a command.
pub fn container_argv(exe: &Path, container: &Container, env: &[(String, String)]) -> Vec<String> {
    match container.command.as_ref().filter(|c| !c.is_empty()) {
        Some(command) => command
            .iter()
            .chain(container.args.iter().flatten())
            .map(|arg| expand(arg, env))
            .collect(),
        None => {
            let mut argv = vec![exe.to_string_lossy().into_owned(), "echo".to_string()];
            for port in container.ports.iter().flatten() {
                let proto = port.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                argv.push("--port".into());
                argv.push(format!("{}/{proto}", port.container_port));
            }
            argv
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "node1", "containers": [{
                "name": "c",
                "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}],
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "NODE_NAME", "value": "overridden"},
                    {"name": "GREETING", "value": "hi $(ME) on $(NODE_NAME)"},
                    {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
            }]},
        }))
        .unwrap()
    }

    #[test]
    fn env_resolves_values_and_field_refs() {
        let pod = pod();
        let facts = PodFacts {
            pod: &pod,
            pod_ip: "10.244.1.5".parse().unwrap(),
            node_name: "node1",
            host_ip: "192.168.77.11".parse().unwrap(),
        };
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let env = container_env(&facts, container);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("POD_NAME"), Some("web-1"));
        assert_eq!(get("POD_NAMESPACE"), Some("shop"));
        assert_eq!(get("POD_IP"), Some("10.244.1.5"));
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("ME"), Some("web-1"));
        assert_eq!(get("NS"), Some("shop"));
        assert_eq!(get("IP"), Some("10.244.1.5"));
        assert_eq!(get("NODE"), Some("node1"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("NODE_NAME"), Some("overridden"));
        assert_eq!(get("SECRET"), None);
        assert_eq!(get("GREETING"), Some("hi web-1 on overridden"));
    }

    #[test]
    fn references_expand_like_the_kubelet() {
        let env = [("A".to_string(), "x".to_string()), ("B".to_string(), "y".to_string())];
        assert_eq!(expand("$(A)-$(B)", &env), "x-y");
        assert_eq!(expand("$$(A) $$ $", &env), "$(A) $ $");
        assert_eq!(expand("$(C) $(A", &env), "$(C) $(A");
        assert_eq!(expand("cost: 5$", &env), "cost: 5$");
    }

    #[test]
    fn argv_is_the_command_or_the_echo_on_the_ports() {
        let pod = pod();
        let mut container = pod.spec.as_ref().unwrap().containers[0].clone();
        assert_eq!(
            container_argv(Path::new("/bin/svcnet"), &container, &[]),
            ["/bin/svcnet", "echo", "--port", "8080/tcp", "--port", "53/udp"]
        );
        container.command = Some(vec!["sleep".into()]);
        container.args = Some(vec!["$(SECONDS)".into(), "$$(SECONDS)".into(), "$(NONE)".into()]);
        let env = [("SECONDS".to_string(), "5".to_string())];
        assert_eq!(
            container_argv(Path::new("/bin/svcnet"), &container, &env),
            ["sleep", "5", "$(SECONDS)", "$(NONE)"]
        );
    }
}
