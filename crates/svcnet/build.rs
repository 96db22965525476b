//! Links `svcnet` as a position-dependent executable. The node agent starts this binary twice
//! per container (the shim, then the built-in echo workload), and as a PIE every start had the
//! dynamic loader apply about 64,000 relocations and copy the pages they touch: 2.6 ms of CPU
//! per exec against 1.1 ms without (`perf stat svcnet --version`). Kubernetes' own Go binaries
//! are position-dependent by default too.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
