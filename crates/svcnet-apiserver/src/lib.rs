//! svcnet-apiserver
