//! svcnet-protobuf
