//! svcnet-node: the node agent (kubelet + CNI). It registers its Node, renews its Lease and runs
//! the pods bound to it as network namespaces with processes inside, probes them and reports
//! their status. Names and addresses it shares with the lab are in docs/lab.md.

pub mod netns;
