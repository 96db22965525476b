//! The names the agent and the lab share (docs/lab.md): the lab prefix, pod namespaces and the
//! node-side veth of a pod.

use std::path::Path;

/// FNV-1a, 64 bit: stable across Rust versions and machines, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// murmur3's fmix64: spreads every input bit over the whole word.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The lab's default short name: `sn` + the first 4 hex digits of a hash of the canonical data
/// dir, so two labs with different data dirs never collide. The hash is FNV-1a 64 of the path
/// bytes followed by murmur3's 64-bit finalizer, so the top digits change with every byte of
/// the path (plain FNV-1a's top bits barely move with the last bytes). A dir that does not
/// exist (yet) is hashed as given.
pub fn lab_prefix(data_dir: &Path) -> String {
    let canonical = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    let hash = fnv1a(canonical.as_os_str().as_encoded_bytes());
    format!("sn{:04x}", fmix64(hash) >> 48)
}

/// The first `n` hex digits of a pod UID, dashes removed.
fn uid_hex(uid: &str, n: usize) -> String {
    uid.chars()
        .filter(char::is_ascii_hexdigit)
        .take(n)
        .collect::<String>()
        .to_lowercase()
}

/// The pod's network namespace: `<prefix>-p-<first 12 hex digits of the UID>`.
pub fn pod_netns(prefix: &str, uid: &str) -> String {
    format!("{prefix}-p-{}", uid_hex(uid, 12))
}

/// The node side of the pod's veth: `veth<8 hex>` (15 bytes at most, the kernel's limit).
pub fn pod_veth(uid: &str) -> String {
    format!("veth{}", uid_hex(uid, 8))
}

/// The 12 hex digits of a pod namespace name, if `name` is one of this prefix.
pub fn pod_netns_id<'a>(prefix: &str, name: &'a str) -> Option<&'a str> {
    name.strip_prefix(prefix)?.strip_prefix("-p-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_stable_and_short() {
        let a = lab_prefix(Path::new("/nonexistent/lab-a"));
        assert_eq!(a, lab_prefix(Path::new("/nonexistent/lab-a")));
        assert_ne!(a, lab_prefix(Path::new("/nonexistent/lab-b")));
        assert_eq!(a.len(), 6);
        // Pinned: the lab and `svcnet exec` compute it apart, and running labs depend on it.
        assert_eq!(a, "sn267a");
        assert_eq!(lab_prefix(Path::new("/nonexistent/lab-b")), "snd941");
        assert!(a.starts_with("sn"));
        // FNV-1a of the bytes, fixed forever: a change would orphan running labs.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn pod_names_follow_the_uid() {
        let uid = "0A1B2C3D-4E5F-6789-abcd-ef0123456789";
        assert_eq!(pod_netns("sn1234", uid), "sn1234-p-0a1b2c3d4e5f");
        assert_eq!(pod_veth(uid), "veth0a1b2c3d");
        assert_eq!(pod_netns_id("sn1234", "sn1234-p-0a1b2c3d4e5f"), Some("0a1b2c3d4e5f"));
        assert_eq!(pod_netns_id("sn1234", "sn1234-node1"), None);
    }
}
