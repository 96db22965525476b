//! Workloads (Deployments, ReplicaSets, StatefulSets and the pod templates inside them):
//! upstream's defaulting and validation over the objects' JSON form, without I/O.

pub mod defaults;
pub mod validation;

#[cfg(test)]
mod validation_tests;
