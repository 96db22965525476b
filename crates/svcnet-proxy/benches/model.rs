//! The node proxy's pure model: the desired table for the synthetic Services of
//! `svcnet bench proxy` (each with 10 ready endpoints), computed from the objects.
//!
//! ```sh
//! cargo bench -p svcnet-proxy --bench model
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use svcnet_proxy::bench::{model_config, node, objects};
use svcnet_proxy::desired;

fn full_model(c: &mut Criterion) {
    let mut group = c.benchmark_group("desired");
    group.sample_size(10);
    for services in [1_000, 10_000] {
        let (svcs, slices) = objects(services, 10);
        group.bench_with_input(BenchmarkId::from_parameter(services), &services, |b, _| {
            b.iter(|| desired(&svcs, &slices, &node(), &model_config()))
        });
    }
    group.finish();
}

criterion_group!(benches, full_model);
criterion_main!(benches);
