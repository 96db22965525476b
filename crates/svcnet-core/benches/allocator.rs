//! Cost of the cluster-IP and node-port bitmaps per create: an automatic allocation (and its
//! release, so the fill level stays put) at several fill levels, requested values, and the memory
//! the bitmaps take. Ranges are filled through `allocate_next`, the path automatic creates take,
//! so the layout (dynamic band first, runs left by the forward scan) is the one a cluster ends up
//! with.
//!
//! `cargo bench -p svcnet-core --bench allocator`; figures in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use svcnet_core::service::allocator::{ip_static_band, Bitmap, IpRange, PortRange};

/// splitmix64: the random numbers the API server draws, without a dependency.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        Random(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A CIDR with `used` addresses taken by automatic allocations.
fn ip_range(cidr: &str, used: u64, random: &mut Random) -> IpRange {
    let mut range = IpRange::parse(cidr).unwrap();
    for _ in 0..used {
        range.allocate_next(random.next()).unwrap();
    }
    range
}

/// A CIDR with every address but one taken, that one in the static band: the longest scan there
/// is (the whole dynamic band, then the static band).
fn ip_range_one_free(cidr: &str, random: &mut Random) -> IpRange {
    let mut range = IpRange::parse(cidr).unwrap();
    let size = range.bitmap().size();
    let keep = random.next() % ip_static_band(size);
    for offset in (0..size).filter(|o| *o != keep) {
        range.allocate(range.address(offset)).unwrap();
    }
    range
}

fn port_range(used: u64, random: &mut Random) -> PortRange {
    let mut range = PortRange::parse("30000-32767").unwrap();
    for _ in 0..used {
        range.allocate_next(random.next()).unwrap();
    }
    range
}

fn percent(used: u64, size: u64) -> String {
    format!("{:.2}%", used as f64 * 100.0 / size as f64)
}

/// Heap of a bitmap: one u64 word per 64 offsets (the words vector is allocated at its length).
fn bitmap_heap(bitmap: &Bitmap) -> usize {
    bitmap.size().div_ceil(64) as usize * 8
}

fn automatic_ips(c: &mut Criterion) {
    let mut random = Random::new(1);
    let mut group = c.benchmark_group("ip_allocate_next_release");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let size = IpRange::parse("10.96.0.0/12").unwrap().bitmap().size();
    let mut cases: Vec<(String, IpRange)> = Vec::new();
    for (label, fill) in [("0%", 0.0), ("50%", 0.5), ("99%", 0.99), ("99.99%", 0.9999)] {
        let used = (size as f64 * fill) as u64;
        cases.push((
            format!("10.96.0.0/12 at {label}"),
            ip_range("10.96.0.0/12", used, &mut random),
        ));
    }
    cases.push((
        "10.96.0.0/12 with one free".into(),
        ip_range_one_free("10.96.0.0/12", &mut random),
    ));
    // The smallest CIDRs holding 10,000 and 60,000 Services.
    cases.push((
        "10.96.0.0/18 with 10000".into(),
        ip_range("10.96.0.0/18", 10_000, &mut random),
    ));
    cases.push((
        "10.96.0.0/16 with 60000".into(),
        ip_range("10.96.0.0/16", 60_000, &mut random),
    ));
    for (name, mut range) in cases {
        let used = range.bitmap().used();
        eprintln!(
            "{name}: {used} of {} used ({})",
            range.bitmap().size(),
            percent(used, range.bitmap().size())
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let ip = range.allocate_next(random.next()).unwrap();
                range.release(black_box(ip));
                ip
            })
        });
    }
    group.finish();
}

/// Ranges sized so that 10,000 and 60,000 Services leave 0.1% of them free (service CIDRs are
/// powers of two; this is the bitmap an IpRange of that size holds).
fn nearly_full_sized(c: &mut Criterion) {
    let mut random = Random::new(2);
    let mut group = c.benchmark_group("bitmap_nearly_full_sized");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for services in [10_000u64, 60_000] {
        let size = services + services / 1000;
        let mut bitmap = Bitmap::new(size, ip_static_band(size));
        for _ in 0..services {
            bitmap.allocate_next(random.next()).unwrap();
        }
        eprintln!(
            "{services} Services in a range of {size}: {} used ({})",
            bitmap.used(),
            percent(bitmap.used(), size)
        );
        group.bench_function(format!("{services} of {size}"), |b| {
            b.iter(|| {
                let offset = bitmap.allocate_next(random.next()).unwrap();
                bitmap.release(black_box(offset));
                offset
            })
        });
    }
    group.finish();
}

fn automatic_ports(c: &mut Criterion) {
    let mut random = Random::new(3);
    let mut group = c.benchmark_group("port_allocate_next_release");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (label, used) in [("0%", 0u64), ("50%", 1384), ("99.9%", 2765)] {
        let mut range = port_range(used, &mut random);
        eprintln!("30000-32767 at {label}: {used} of {} used", range.bitmap().size());
        group.bench_function(format!("30000-32767 at {label}"), |b| {
            b.iter(|| {
                let port = range.allocate_next(random.next()).unwrap();
                range.release(black_box(port));
                port
            })
        });
    }
    group.finish();
}

/// Requested values: a check and a bit set, at any fill level.
fn requested(c: &mut Criterion) {
    let mut random = Random::new(4);
    let mut group = c.benchmark_group("requested_allocate_release");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let size = IpRange::parse("10.96.0.0/12").unwrap().bitmap().size();
    let mut ips = ip_range("10.96.0.0/12", size / 2, &mut random);
    let free_ip = ips.peek_next(random.next()).unwrap();
    let taken = (0..size).find(|o| ips.bitmap().is_set(*o)).unwrap();
    let taken_ip = ips.address(taken);
    group.bench_function("ip 10.96.0.0/12 at 50%", |b| {
        b.iter(|| {
            ips.allocate(black_box(free_ip)).unwrap();
            ips.release(free_ip);
        })
    });
    group.bench_function("ip 10.96.0.0/12 already allocated", |b| {
        b.iter(|| ips.allocate(black_box(taken_ip)).unwrap_err())
    });
    let mut ports = port_range(1384, &mut random);
    let free_port = ports.peek_next(random.next()).unwrap();
    group.bench_function("port 30000-32767 at 50%", |b| {
        b.iter(|| {
            ports.allocate(black_box(free_port)).unwrap();
            ports.release(free_port);
        })
    });
    group.finish();
}

/// What the bitmaps take: fixed by the size of the range, whatever the number of Services.
fn memory() {
    println!("allocator memory (size_of + heap of the bitmap words; independent of the fill level):");
    for cidr in [
        "10.96.0.0/12",
        "10.96.0.0/16",
        "10.96.0.0/18",
        "fd00:10:96::/108",
        "fd00:10:96::/64",
    ] {
        let range = IpRange::parse(cidr).unwrap();
        let heap = bitmap_heap(range.bitmap());
        println!(
            "  IpRange {cidr:<18} {:>9} addresses: {} + {heap} bytes = {:.1} KiB",
            range.bitmap().size(),
            size_of::<IpRange>(),
            (size_of::<IpRange>() + heap) as f64 / 1024.0
        );
    }
    let ports = PortRange::parse("30000-32767").unwrap();
    let heap = bitmap_heap(ports.bitmap());
    println!(
        "  PortRange 30000-32767  {:>9} ports:     {} + {heap} bytes = {} bytes",
        ports.bitmap().size(),
        size_of::<PortRange>(),
        size_of::<PortRange>() + heap
    );
}

criterion_group!(benches, automatic_ips, nearly_full_sized, automatic_ports, requested);
criterion_main!(memory, benches);
