//! svcnet-store
