//! Heap held by the zone of a 10,000-Service, 50,000-pod cluster, counted by a wrapping
//! allocator (run with `--nocapture` to see the figures; the bounds keep regressions visible).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

use svcnet_dns::zone::{Cluster, PodsMode, ZoneConfig};

fn held_by(pods: PodsMode) -> isize {
    let before = LIVE.load(Relaxed);
    let mut cluster = Cluster::new(ZoneConfig {
        pods,
        ..ZoneConfig::default()
    });
    svcnet_dns::bench::synthetic_cluster(&mut cluster, 10_000, 50_000);
    let held = LIVE.load(Relaxed) - before;
    drop(cluster);
    held
}

#[test]
fn a_large_cluster_fits_in_a_few_megabytes() {
    let insecure = held_by(PodsMode::Insecure);
    let verified = held_by(PodsMode::Verified);
    println!("zone heap, 10,000 Services + 50,000 pods: insecure {insecure} B, verified {verified} B");
    assert!(insecure < 12 << 20, "{insecure}");
    assert!(verified < 16 << 20, "{verified}");
}
