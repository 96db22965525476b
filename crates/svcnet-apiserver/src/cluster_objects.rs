//! Objects every cluster has from its first start besides the namespaces: the `kubernetes`
//! ServiceCIDR describing the service ranges, and `default/kubernetes`, the Service on the first
//! address of the range that points at the API server.

use serde_json::json;

use svcnet_core::resources;

use crate::body::FieldValidation;
use crate::registry::{Registry, WriteOptions};
use crate::status::ApiResult;

const OPTIONS: WriteOptions = WriteOptions {
    dry_run: false,
    validation: FieldValidation::Ignore,
};

/// Creates what is missing; existing objects are left as they are.
pub async fn ensure(registry: &Registry, api_port: u16) -> ApiResult<()> {
    ensure_service_cidr(registry).await?;
    ensure_kubernetes_service(registry, api_port).await
}

async fn ensure_service_cidr(registry: &Registry) -> ApiResult<()> {
    let cidrs = resources::by_kind("ServiceCIDR").expect("served");
    if registry.get(cidrs, None, "kubernetes").await.is_ok() {
        return Ok(());
    }
    let object = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "ServiceCIDR",
        "metadata": {"name": "kubernetes"},
        "spec": {"cidrs": registry.services.network.cidrs},
    });
    let created = registry.create(cidrs, None, object, OPTIONS).await?;
    // Status goes through its subresource, as upstream's ServiceCIDR controller writes it.
    let mut status = created.object;
    status["status"] = json!({"conditions": [{
        "type": "Ready",
        "status": "True",
        "lastTransitionTime": crate::objects::now_rfc3339(),
        "reason": "",
        "message": "Kubernetes Service CIDR is ready",
    }]});
    registry
        .update(cidrs, None, "kubernetes", Some("status"), status, OPTIONS)
        .await?;
    Ok(())
}

async fn ensure_kubernetes_service(registry: &Registry, api_port: u16) -> ApiResult<()> {
    let services = resources::by_kind("Service").expect("served");
    if registry.get(services, Some("default"), "kubernetes").await.is_ok() {
        return Ok(());
    }
    let object = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "clusterIP": registry.services.first_address().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
    });
    registry.create(services, Some("default"), object, OPTIONS).await?;
    Ok(())
}
