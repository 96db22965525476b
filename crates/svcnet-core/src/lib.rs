//! svcnet-core: the Kubernetes object model without I/O: the resource registry, metadata rules,
//! label and field selectors, patch application (JSON, merge, strategic merge) and Table rendering.
//! Everything here is a pure function of its inputs, so the API server, controllers and tests share it.

pub mod field;
pub mod patch;
pub mod resources;
pub mod selector;
pub mod service;
pub mod table;
pub mod workloads;
