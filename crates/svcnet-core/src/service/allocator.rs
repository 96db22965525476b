//! Range allocators for cluster IPs and node ports, as plain bitmaps: pure data structures whose
//! randomness is passed in, so tests and the API server share them. Both follow upstream's split of
//! a range into a lower static band, preferred by requested values, and an upper dynamic band,
//! preferred by automatic ones (KEP-3070 for IPs, KEP-3668 for node ports), so that well-known
//! addresses such as the DNS service's stay free.

use std::net::IpAddr;

/// Why an allocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("range is full")]
    Full,
    #[error("provided value is already allocated")]
    Allocated,
    #[error("provided value is not in the valid range")]
    OutOfRange,
}

/// A set of offsets `0..size` with a static band `0..static_size`.
#[derive(Debug, Clone)]
pub struct Bitmap {
    words: Vec<u64>,
    size: u64,
    static_size: u64,
    used: u64,
    /// Offsets taken in the static band; with `used` it tells when a band is full, so a nearly
    /// full range does not scan a full dynamic band before reaching the static one.
    used_static: u64,
}

impl Bitmap {
    pub fn new(size: u64, static_size: u64) -> Self {
        Bitmap {
            words: vec![0; size.div_ceil(64) as usize],
            size,
            static_size: static_size.min(size),
            used: 0,
            used_static: 0,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn free(&self) -> u64 {
        self.size - self.used
    }

    pub fn is_set(&self, offset: u64) -> bool {
        offset < self.size && self.words[(offset / 64) as usize] & (1 << (offset % 64)) != 0
    }

    /// Marks a requested offset.
    pub fn allocate(&mut self, offset: u64) -> Result<(), AllocationError> {
        if offset >= self.size {
            return Err(AllocationError::OutOfRange);
        }
        if self.is_set(offset) {
            return Err(AllocationError::Allocated);
        }
        self.set(offset);
        Ok(())
    }

    /// Picks a free offset, from the dynamic band first, starting at a random point (`random` is
    /// any random number) and scanning forward, so the choice is spread but never fails while
    /// space is left.
    pub fn allocate_next(&mut self, random: u64) -> Result<u64, AllocationError> {
        let offset = self.peek_next(random).ok_or(AllocationError::Full)?;
        self.set(offset);
        Ok(offset)
    }

    /// The offset `allocate_next` would take, without taking it (dry runs).
    pub fn peek_next(&self, random: u64) -> Option<u64> {
        let dynamic_full = self.used - self.used_static == self.size - self.static_size;
        let dynamic = if dynamic_full {
            None
        } else {
            self.find_free(self.static_size, self.size, random)
        };
        dynamic.or_else(|| self.find_free(0, self.static_size, random))
    }

    pub fn release(&mut self, offset: u64) {
        if self.is_set(offset) {
            self.words[(offset / 64) as usize] &= !(1 << (offset % 64));
            self.used -= 1;
            if offset < self.static_size {
                self.used_static -= 1;
            }
        }
    }

    fn set(&mut self, offset: u64) {
        self.words[(offset / 64) as usize] |= 1 << (offset % 64);
        self.used += 1;
        if offset < self.static_size {
            self.used_static += 1;
        }
    }

    /// The first free offset in `start..end` at or after a random point, wrapping once.
    fn find_free(&self, start: u64, end: u64, random: u64) -> Option<u64> {
        if start >= end {
            return None;
        }
        let pivot = start + random % (end - start);
        self.scan(pivot, end).or_else(|| self.scan(start, pivot))
    }

    /// Word-at-a-time scan for a clear bit in `from..to`.
    fn scan(&self, from: u64, to: u64) -> Option<u64> {
        let mut offset = from;
        while offset < to {
            let word = self.words[(offset / 64) as usize] | ((1u64 << (offset % 64)) - 1);
            if word != u64::MAX {
                let found = (offset / 64) * 64 + u64::from((!word).trailing_zeros());
                return (found < to).then_some(found);
            }
            offset = (offset / 64 + 1) * 64;
        }
        None
    }
}

/// KEP-3070: the static band of a service CIDR holds min(max(16, size/16), 256) addresses.
pub fn ip_static_band(size: u64) -> u64 {
    (size / 16).clamp(16, 256).min(size)
}

/// KEP-3668: the static band of the node-port range holds min(max(16, size/32), 128) ports.
pub fn port_static_band(size: u64) -> u64 {
    (size / 32).clamp(16, 128).min(size)
}

/// Largest number of addresses tracked per range; bigger (IPv6) ranges use their first part,
/// as upstream's bitmap allocator caps its size.
const MAX_IP_RANGE: u64 = 1 << 20;

/// A service CIDR with its bitmap: offset 0 is the first usable address (network + 1).
#[derive(Debug, Clone)]
pub struct IpRange {
    pub network: IpAddr,
    pub prefix: u8,
    first: u128,
    bitmap: Bitmap,
}

impl IpRange {
    /// Parses `10.96.0.0/12` or `fd00:10:96::/112`.
    pub fn parse(cidr: &str) -> Result<Self, String> {
        let (address, prefix) = cidr.split_once('/').ok_or_else(|| format!("{cidr}: not a CIDR"))?;
        let network: IpAddr = address.parse().map_err(|_| format!("{cidr}: invalid address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| format!("{cidr}: invalid prefix"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        if prefix > bits || prefix + 2 > bits {
            return Err(format!("{cidr}: prefix too long for a service range"));
        }
        let base = ip_to_u128(network);
        let host_bits = bits - prefix;
        let mask = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        if base & mask != 0 {
            return Err(format!("{cidr}: address has host bits set"));
        }
        // IPv4 loses its network and broadcast addresses, IPv6 only its network (subnet-router
        // anycast) address.
        let total = if host_bits >= 64 { u64::MAX } else { 1u64 << host_bits };
        let usable = if network.is_ipv4() { total - 2 } else { total - 1 };
        let size = usable.min(MAX_IP_RANGE);
        Ok(IpRange {
            network,
            prefix,
            first: base + 1,
            bitmap: Bitmap::new(size, ip_static_band(size)),
        })
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }

    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    pub fn bitmap(&self) -> &Bitmap {
        &self.bitmap
    }

    /// The offset of an address, or None outside the range.
    pub fn offset(&self, ip: IpAddr) -> Option<u64> {
        if ip.is_ipv4() != self.is_ipv4() {
            return None;
        }
        let value = ip_to_u128(ip);
        let offset = value.checked_sub(self.first)?;
        (offset < u128::from(self.bitmap.size())).then_some(offset as u64)
    }

    pub fn address(&self, offset: u64) -> IpAddr {
        u128_to_ip(self.first + u128::from(offset), self.is_ipv4())
    }

    pub fn allocate(&mut self, ip: IpAddr) -> Result<(), AllocationError> {
        let offset = self.offset(ip).ok_or(AllocationError::OutOfRange)?;
        self.bitmap.allocate(offset)
    }

    pub fn allocate_next(&mut self, random: u64) -> Result<IpAddr, AllocationError> {
        self.bitmap.allocate_next(random).map(|offset| self.address(offset))
    }

    pub fn peek_next(&self, random: u64) -> Option<IpAddr> {
        self.bitmap.peek_next(random).map(|offset| self.address(offset))
    }

    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.offset(ip).is_some_and(|offset| self.bitmap.is_set(offset))
    }

    pub fn release(&mut self, ip: IpAddr) {
        if let Some(offset) = self.offset(ip) {
            self.bitmap.release(offset);
        }
    }
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn u128_to_ip(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4((value as u32).into())
    } else {
        IpAddr::V6(value.into())
    }
}

/// The node-port range (inclusive bounds) with its bitmap.
#[derive(Debug, Clone)]
pub struct PortRange {
    pub base: u16,
    pub last: u16,
    bitmap: Bitmap,
}

impl PortRange {
    /// Parses `30000-32767` (a single port is a range of one).
    pub fn parse(range: &str) -> Result<Self, String> {
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        let base: u16 = low.trim().parse().map_err(|_| format!("{range}: invalid port range"))?;
        let last: u16 = high
            .trim()
            .parse()
            .map_err(|_| format!("{range}: invalid port range"))?;
        if base == 0 || last < base {
            return Err(format!("{range}: invalid port range"));
        }
        Ok(Self::new(base, last))
    }

    pub fn new(base: u16, last: u16) -> Self {
        let size = u64::from(last - base) + 1;
        PortRange {
            base,
            last,
            bitmap: Bitmap::new(size, port_static_band(size)),
        }
    }

    pub fn bitmap(&self) -> &Bitmap {
        &self.bitmap
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.base..=self.last).contains(&port)
    }

    pub fn allocate(&mut self, port: u16) -> Result<(), AllocationError> {
        if !self.contains(port) {
            return Err(AllocationError::OutOfRange);
        }
        self.bitmap.allocate(u64::from(port - self.base))
    }

    pub fn allocate_next(&mut self, random: u64) -> Result<u16, AllocationError> {
        self.bitmap
            .allocate_next(random)
            .map(|offset| self.base + offset as u16)
    }

    pub fn peek_next(&self, random: u64) -> Option<u16> {
        self.bitmap.peek_next(random).map(|offset| self.base + offset as u16)
    }

    pub fn is_allocated(&self, port: u16) -> bool {
        self.contains(port) && self.bitmap.is_set(u64::from(port - self.base))
    }

    pub fn release(&mut self, port: u16) {
        if self.contains(port) {
            self.bitmap.release(u64::from(port - self.base));
        }
    }

    pub fn describe(&self) -> String {
        format!("{}-{}", self.base, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_sizes_follow_the_keps() {
        assert_eq!(ip_static_band((1 << 20) - 2), 256);
        assert_eq!(ip_static_band(6), 6);
        assert_eq!(ip_static_band(254), 16);
        assert_eq!(port_static_band(2768), 86);
        assert_eq!(port_static_band(100), 16);
    }

    #[test]
    fn dynamic_prefers_the_upper_band_then_falls_back() {
        let mut bitmap = Bitmap::new(32, 16);
        let mut taken = Vec::new();
        for random in 0..16 {
            taken.push(bitmap.allocate_next(random * 7).unwrap());
        }
        assert!(taken.iter().all(|o| *o >= 16), "{taken:?}");
        let next = bitmap.allocate_next(3).unwrap();
        assert!(next < 16);
        for _ in 0..15 {
            bitmap.allocate_next(11).unwrap();
        }
        assert_eq!(bitmap.allocate_next(0), Err(AllocationError::Full));
        assert_eq!(bitmap.used(), 32);
        bitmap.release(5);
        assert_eq!(bitmap.allocate_next(99).unwrap(), 5);
    }

    #[test]
    fn requested_values_are_checked() {
        let mut bitmap = Bitmap::new(10, 2);
        assert_eq!(bitmap.allocate(3), Ok(()));
        assert_eq!(bitmap.allocate(3), Err(AllocationError::Allocated));
        assert_eq!(bitmap.allocate(10), Err(AllocationError::OutOfRange));
    }

    #[test]
    fn ip_ranges_map_offsets_to_addresses() {
        let mut range = IpRange::parse("10.96.0.0/12").unwrap();
        assert_eq!(range.bitmap().size(), (1 << 20) - 2);
        assert_eq!(range.address(0).to_string(), "10.96.0.1");
        assert_eq!(range.offset("10.96.0.10".parse().unwrap()), Some(9));
        assert_eq!(range.offset("10.112.0.0".parse().unwrap()), None);
        assert_eq!(range.offset("10.111.255.255".parse().unwrap()), None, "broadcast");
        assert_eq!(
            range.allocate("10.0.0.1".parse().unwrap()),
            Err(AllocationError::OutOfRange)
        );
        let dynamic = range.allocate_next(12345).unwrap();
        assert!(range.offset(dynamic).unwrap() >= 256);
        let small = IpRange::parse("10.0.0.0/29").unwrap();
        assert_eq!(small.bitmap().size(), 6);
        let v6 = IpRange::parse("fd00:10:96::/112").unwrap();
        assert_eq!(v6.address(0).to_string(), "fd00:10:96::1");
        assert!(IpRange::parse("10.96.0.1/12").is_err());
    }

    #[test]
    fn port_ranges() {
        let mut range = PortRange::parse("30000-32767").unwrap();
        assert_eq!(range.allocate(30080), Ok(()));
        assert_eq!(range.allocate(30080), Err(AllocationError::Allocated));
        assert_eq!(range.allocate(40000), Err(AllocationError::OutOfRange));
        let port = range.allocate_next(7).unwrap();
        assert!(port >= 30086, "dynamic ports avoid the static band: {port}");
        assert!(PortRange::parse("5-1").is_err());
    }
}
