//! Objects every cluster has from its first start besides the namespaces: the `kubernetes`
//! ServiceCIDR describing the service ranges, and `default/kubernetes`, the Service on the first
//! address of the range that points at the API server, with its endpoints when the server is
//! advertised on an address pods can reach (the lab's 192.168.77.1:6443; never loopback, which
//! Endpoints may not hold).

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
pub async fn ensure(registry: &Registry, advertise: Option<std::net::SocketAddr>) -> ApiResult<()> {
    let api_port = advertise.map_or(6443, |a| a.port());
    ensure_service_cidr(registry).await?;
    ensure_kubernetes_service(registry, api_port).await?;
    match advertise {
        Some(address) if !address.ip().is_loopback() && !address.ip().is_unspecified() => {
            ensure_kubernetes_endpoints(registry, address).await
        }
        _ => Ok(()),
    }
}

/// `default/kubernetes` Endpoints and EndpointSlice pointing at the advertised address, as
/// upstream's endpoint reconciler keeps them: created, or rewritten when the address changed.
async fn ensure_kubernetes_endpoints(registry: &Registry, address: std::net::SocketAddr) -> ApiResult<()> {
    let ip = address.ip().to_string();
    let port = json!([{"name": "https", "port": address.port(), "protocol": "TCP"}]);
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": ip}], "ports": port}],
    });
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": port,
    });
    put_if_changed(registry, "Endpoints", endpoints, &["subsets"]).await?;
    put_if_changed(registry, "EndpointSlice", slice, &["addressType", "endpoints", "ports"]).await
}

/// Creates `default/<name>` of `kind`, or updates it when any of `fields` differs.
async fn put_if_changed(
    registry: &Registry,
    kind: &str,
    mut object: serde_json::Value,
    fields: &[&str],
) -> ApiResult<()> {
    let resource = resources::by_kind(kind).expect("served");
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    match registry.get(resource, Some("default"), &name).await {
        Ok(existing) => {
            if fields.iter().all(|f| existing[*f] == object[*f]) {
                return Ok(());
            }
            object["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
            registry
                .update(resource, Some("default"), &name, None, object, OPTIONS)
                .await?;
        }
        Err(_) => {
            registry.create(resource, Some("default"), object, OPTIONS).await?;
        }
    }
    Ok(())
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
