//! svcnet-lab: a multi-node cluster on one machine. It builds the VPC, the nodes, the SLB host
//! and an internet client as network namespaces, starts the control plane and one node agent per
//! node, and removes all of it again (docs/lab.md has the names and addresses).
