//! The `NETLINK_NETFILTER` socket: opened inside the target network namespace (a netlink
//! socket stays bound to the namespace it was created in), sends whole batches, reads the
//! kernel's errors back, and dumps chain and set names.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::batch::Batch;
use super::consts::*;
use crate::ruleset::TABLE;

/// What the kernel refused, by the object the message was about.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The socket could not be opened or used.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel rejected a message of the batch (so the whole transaction).
    #[error("{what}: {error}")]
    Rejected {
        /// The message, e.g. `add rule svc-x ...`.
        what: String,
        /// The errno.
        error: io::Error,
    },
    /// Sent, but neither an error nor the final ACK came back.
    #[error("the kernel did not acknowledge the batch")]
    NoAck,
}

/// A netlink socket talking to nf_tables in one namespace.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    next_seq: u32,
    sndbuf: usize,
}

const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
/// Room for the kernel's error messages when a big batch fails in many places.
const RECEIVE_BUFFER: usize = 8 << 20;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn set_int_option(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret).map(|_| ())
}

impl Socket {
    /// Opens the socket in this thread's namespace, or in `ip netns` namespace `netns` (on a
    /// short-lived thread that joins it, so the caller's thread stays where it is).
    pub fn open(netns: Option<&str>) -> io::Result<Socket> {
        let Some(netns) = netns else {
            return Socket::open_here();
        };
        let file = std::fs::File::open(format!("/run/netns/{netns}"))?;
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Socket::open_here()
        })
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?
    }

    fn open_here() -> io::Result<Socket> {
        let raw = check(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        })?;
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        // Errors without a copy of the (possibly 64 kB) request; extended messages when any.
        set_int_option(&fd, SOL_NETLINK, NETLINK_CAP_ACK, 1)?;
        let _ = set_int_option(&fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let _ = set_int_option(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            RECEIVE_BUFFER as libc::c_int,
        );
        Ok(Socket {
            fd,
            next_seq: std::process::id().wrapping_mul(1_000_003),
            sndbuf: 0,
        })
    }

    /// A new batch numbered after everything sent so far.
    pub fn batch(&mut self) -> Batch {
        Batch::new(self.next_seq)
    }

    /// Sends a batch (the kernel processes it within the send) and reads back its errors.
    pub fn send(&mut self, batch: Batch) -> Result<(), NetlinkError> {
        let last_seq = batch.last_seq();
        let (bytes, first_seq, descriptions) = batch.finish();
        self.next_seq = first_seq.wrapping_add(descriptions.len() as u32 + 1);
        self.drain_stale()?;
        self.grow_send_buffer(bytes.len())?;
        let sent =
            check(unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) } as libc::c_int)?;
        if sent as usize != bytes.len() {
            return Err(io::Error::other("short netlink send").into());
        }
        self.read_acks(first_seq, last_seq, &descriptions)
    }

    /// A batch is one datagram; the socket's send buffer must hold it whole.
    fn grow_send_buffer(&mut self, len: usize) -> io::Result<()> {
        if len + 4096 > self.sndbuf {
            let size = (len + 65536).min(i32::MAX as usize / 2);
            set_int_option(&self.fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, size as libc::c_int)?;
            self.sndbuf = size;
        }
        Ok(())
    }

    /// Replies left over from an earlier, failed exchange.
    fn drain_stale(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; 65536];
        while self.recv(&mut buf, false)?.is_some() {}
        Ok(())
    }

    fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<usize>> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(error)
        }
    }

    fn read_acks(&self, first_seq: u32, last_seq: u32, descriptions: &[String]) -> Result<(), NetlinkError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut first_error = None;
        let mut acked = false;
        while let Some(n) = self.recv(&mut buf, false)? {
            for message in messages(&buf[..n]) {
                let Some((errno, seq, extra)) = error_message(message) else {
                    continue;
                };
                if errno == 0 {
                    acked |= seq == last_seq;
                    continue;
                }
                if first_error.is_none() {
                    let index = seq.wrapping_sub(first_seq) as usize;
                    let mut what = descriptions
                        .get(index)
                        .cloned()
                        .unwrap_or_else(|| format!("message {seq}"));
                    if let Some(extra) = extra {
                        what = format!("{what} ({extra})");
                    }
                    first_error = Some(NetlinkError::Rejected {
                        what,
                        error: io::Error::from_raw_os_error(-errno),
                    });
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None if acked => Ok(()),
            None => Err(NetlinkError::NoAck),
        }
    }

    /// Names of the table's chains and named sets (anonymous sets belong to rules).
    pub fn live_names(&mut self) -> Result<(BTreeSet<String>, BTreeSet<String>), NetlinkError> {
        let chains = self.dump(NFT_MSG_GETCHAIN, NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, None)?;
        let sets = self.dump(NFT_MSG_GETSET, NFTA_SET_TABLE, NFTA_SET_NAME, Some(NFTA_SET_FLAGS))?;
        Ok((chains, sets))
    }

    /// One GET dump of the ip family: names of objects in our table (with `flags_attr`,
    /// anonymous ones left out).
    fn dump(
        &mut self,
        kind: u16,
        table_attr: u16,
        name_attr: u16,
        flags_attr: Option<u16>,
    ) -> Result<BTreeSet<String>, NetlinkError> {
        self.drain_stale()?;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut request = Vec::with_capacity(64);
        request.extend_from_slice(&0u32.to_ne_bytes());
        request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
        request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        request.extend_from_slice(&seq.to_ne_bytes());
        request.extend_from_slice(&0u32.to_ne_bytes());
        request.extend_from_slice(&[NFPROTO_IPV4, 0, 0, 0]);
        let len = request.len() as u32;
        request[..4].copy_from_slice(&len.to_ne_bytes());
        check(unsafe { libc::send(self.fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) } as libc::c_int)?;
        let mut names = BTreeSet::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let Some(n) = self.recv(&mut buf, true)? else { continue };
            for message in messages(&buf[..n]) {
                if message_seq(message) != seq {
                    continue;
                }
                match message_type(message) {
                    NLMSG_DONE => return Ok(names),
                    NLMSG_ERROR => {
                        if let Some((errno, _, _)) = error_message(message) {
                            if errno != 0 {
                                return Err(NetlinkError::Rejected {
                                    what: "listing the table".into(),
                                    error: io::Error::from_raw_os_error(-errno),
                                });
                            }
                        }
                    }
                    _ => {
                        let attrs = parse_attrs(message.get(20..).unwrap_or_default());
                        let string = |kind: u16| attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| c_string(v));
                        let anonymous = flags_attr
                            .and_then(|f| attrs.iter().find(|(k, _)| *k == f))
                            .is_some_and(|(_, v)| {
                                v.len() == 4 && u32::from_be_bytes([v[0], v[1], v[2], v[3]]) & 1 != 0
                            });
                        if string(table_attr).as_deref() == Some(TABLE) && !anonymous {
                            names.extend(string(name_attr));
                        }
                    }
                }
            }
        }
    }
}

/// The netlink messages in one datagram.
fn messages(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            return None;
        }
        let message = &data[..len];
        data = &data[((len + 3) & !3).min(data.len())..];
        Some(message)
    })
}

fn message_type(message: &[u8]) -> u16 {
    u16::from_ne_bytes([message[4], message[5]])
}

fn message_seq(message: &[u8]) -> u32 {
    u32::from_ne_bytes([message[8], message[9], message[10], message[11]])
}

/// An NLMSG_ERROR: errno (0 = ACK), the sequence number of the message it answers, and the
/// extended-ACK text when the kernel gave one.
fn error_message(message: &[u8]) -> Option<(i32, u32, Option<String>)> {
    if message_type(message) != NLMSG_ERROR || message.len() < 36 {
        return None;
    }
    let errno = i32::from_ne_bytes([message[16], message[17], message[18], message[19]]);
    let original = &message[20..36];
    let seq = message_seq(original);
    let flags = u16::from_ne_bytes([message[6], message[7]]);
    // NLM_F_ACK_TLVS: attributes follow the (capped) original header.
    let extra = (flags & 0x200 != 0)
        .then(|| parse_attrs(&message[36..]))
        .and_then(|attrs| attrs.into_iter().find(|(k, _)| *k == 1))
        .map(|(_, v)| c_string(v));
    Some((errno, seq, extra))
}

fn parse_attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[((len + 3) & !3).min(data.len())..];
    }
    out
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
