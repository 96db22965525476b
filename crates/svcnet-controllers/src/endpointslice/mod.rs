//! The EndpointSlice controller: keeps, for every Service with a selector, a set of
//! EndpointSlices listing the pods it selects, with upstream's semantics (kubernetes
//! pkg/controller/endpointslice and k8s.io/endpointslice).
//!
//! Start with [`desired`], the pure reconciler (pods and existing slices in, slice writes out);
//! [`apply`] is the shell around it: watches, a work queue of Services, and API writes.
//! [`util`] holds the pod rules the Endpoints controller shares.

pub mod apply;
pub mod desired;
pub mod endpoint;
pub mod trigger;
pub mod util;

use crate::ControllerConfig;

/// Runs the EndpointSlice controller against the API server behind `client`.
pub async fn run(client: kube::Client, config: ControllerConfig) -> anyhow::Result<()> {
    apply::run(client, config).await
}
