//! svcnet-openapi
