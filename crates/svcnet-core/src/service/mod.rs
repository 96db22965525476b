//! Services: upstream's defaulting, validation, update rules and the range allocators behind
//! cluster IPs and node ports, all without I/O.

pub mod allocator;
pub mod defaults;
pub mod update;
pub mod validation;
