//! The lab's cluster DNS: `kube-system/kube-dns` at 10.96.0.10 (the address every pod's
//! resolv.conf names), backed by a Deployment whose pods run `svcnet dns` against the API server,
//! the way a cluster runs CoreDNS behind that Service.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

/// The cluster DNS address (docs/lab.md).
pub const CLUSTER_DNS_IP: &str = "10.96.0.10";
const NAMESPACE: &str = "kube-system";
/// The label upstream's kube-dns Service selects its backends by.
const APP_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
/// Where the DNS pods serve /health and /ready.
const METRICS_PORT: u16 = 9153;

/// The Service, as a cluster's kube-dns Service looks.
pub fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": {APP_LABEL.0: APP_LABEL.1}},
        "spec": {
            "clusterIP": CLUSTER_DNS_IP,
            "selector": {APP_LABEL.0: APP_LABEL.1},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": METRICS_PORT}
            ]
        }
    })
}

/// Two replicas of `svcnet dns` (the binary at `exe`) reading the API at `server`, ready once
/// their zone is loaded.
pub fn deployment(exe: &Path, server: &str) -> Value {
    let command = [
        exe.display().to_string(),
        "dns".into(),
        "--server".into(),
        server.into(),
        "--listen".into(),
        "0.0.0.0:53".into(),
        "--metrics".into(),
        format!("0.0.0.0:{METRICS_PORT}"),
    ];
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "svcnet-dns", "namespace": NAMESPACE, "labels": {APP_LABEL.0: APP_LABEL.1}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {APP_LABEL.0: APP_LABEL.1}},
            "template": {
                "metadata": {"labels": {APP_LABEL.0: APP_LABEL.1}},
                "spec": {
                    "containers": [{
                        "name": "dns",
                        "image": "svcnet",
                        "command": command,
                        "ports": [
                            {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}
                        ],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": METRICS_PORT}, "periodSeconds": 1}
                    }]
                }
            }
        }
    })
}

/// Creates the Service and the Deployment (both may exist already).
pub async fn install(client: &kube::Client, exe: &Path, server: &str) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    create_once(&services, serde_json::from_value(service())?).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    create_once(&deployments, serde_json::from_value(deployment(exe, server))?).await
}

async fn create_once<K>(api: &Api<K>, object: K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_dns_selects_the_dns_pods_at_the_cluster_dns_address() {
        let service: Service = serde_json::from_value(service()).unwrap();
        let spec = service.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some(CLUSTER_DNS_IP));
        let deployment: Deployment =
            serde_json::from_value(deployment(Path::new("/usr/bin/svcnet"), "http://192.168.77.1:6443")).unwrap();
        let template = deployment.spec.unwrap().template;
        assert_eq!(spec.selector, template.metadata.unwrap().labels);
        let container = &template.spec.unwrap().containers[0];
        let command = container.command.as_ref().unwrap();
        assert_eq!(
            command[..4],
            ["/usr/bin/svcnet", "dns", "--server", "http://192.168.77.1:6443"]
        );
        let protocols: Vec<_> = spec
            .ports
            .unwrap()
            .iter()
            .map(|p| (p.port, p.protocol.clone().unwrap()))
            .collect();
        assert!(protocols.contains(&(53, "UDP".into())) && protocols.contains(&(53, "TCP".into())));
    }
}
