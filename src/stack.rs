//! smoltcp over the TAP: the frame writer ([`TapOut`]), a one-packet
//! [`Dev`] that feeds smoltcp exactly the segment rlnet demultiplexed to a
//! flow, and the shared `Interface` (Medium::Ip, any_ip, default routes via
//! its own gateway addresses, so it accepts every destination).

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;

use smoltcp::iface::{Config as IfaceConfig, Interface};
use smoltcp::phy::{
    Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium, PacketMeta,
};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, EthernetProtocol, HardwareAddress, IpAddress, IpCidr};

pub mod frames;

use crate::config::AddrPlan;
use crate::wire::{
    FRAME_BUF, HEADROOM, SegLimit, finish_frame, finish_frame_limited, finish_l2_frame, frag,
};

/// The gateway's MAC: locally administered, fixed, like slirp's.
pub const GATEWAY_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
/// Frames queued while the TAP refuses writes; beyond this they are dropped.
const MAX_PENDING: usize = 1024;

#[derive(Debug, Default, Clone, Copy)]
pub struct TxStats {
    pub frames: u64,
    pub bytes: u64,
    pub queued: u64,
    pub dropped: u64,
}

/// A port's wire: where its frames are read from and written to, each with
/// the virtio-net header first. A TAP in rlnet (the engine supplies it); any
/// frame-preserving fd (a datagram socketpair) in tests. Non-blocking:
/// `WouldBlock` when empty or full.
pub trait Link: AsRawFd {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&self, frame: &[u8]) -> io::Result<usize>;
    /// The interface's name inside the namespace.
    fn name(&self) -> &str;
}

/// Writes frames to the TAP. One reusable buffer with headroom for the
/// virtio-net and Ethernet headers, so smoltcp builds each IP packet in place.
pub struct TapOut {
    link: Box<dyn Link>,
    buf: Box<[u8]>,
    pending: VecDeque<Box<[u8]>>,
    pub gw_mac: EthernetAddress,
    pub ns_mac: Option<EthernetAddress>,
    /// The namespace link's MTU: larger TCP segments are sent as GSO frames,
    /// larger UDP and ICMP packets as fragments.
    mtu: usize,
    /// Identification of the last datagram sent in fragments.
    frag_id: u32,
    pub stats: TxStats,
}

impl TapOut {
    pub fn new(link: Box<dyn Link>, ns_mac: Option<EthernetAddress>, mtu: u32) -> Self {
        TapOut {
            link,
            buf: vec![0u8; FRAME_BUF].into_boxed_slice(),
            pending: VecDeque::new(),
            gw_mac: GATEWAY_MAC,
            ns_mac,
            mtu: mtu as usize,
            // Unpredictable from the start (RFC 7739), then a counter.
            frag_id: u32::try_from(RandomState::new().hash_one(mtu) >> 32).unwrap_or(0),
            stats: TxStats::default(),
        }
    }

    /// The namespace link's MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    pub fn link(&self) -> &dyn Link {
        &*self.link
    }

    /// True while earlier frames wait for the TAP to accept writes.
    pub fn blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Where to build the next IP packet.
    pub fn ip_buf(&mut self) -> &mut [u8] {
        &mut self.buf[HEADROOM..]
    }

    /// Send the IP packet of `ip_len` bytes built in [`Self::ip_buf`].
    pub fn send_ip(&mut self, ip_len: usize) {
        let Some(dst) = self.ns_mac else {
            crate::limited!(Debug, "no MAC known for the namespace yet; frame dropped");
            self.stats.dropped += 1;
            return;
        };
        if self.send_fragments(ip_len, dst) {
            return;
        }
        match finish_frame(&mut self.buf, ip_len, dst, self.gw_mac, self.mtu) {
            Some(len) => self.write(len),
            None => self.stats.dropped += 1,
        }
    }

    /// Send the TCP segment smoltcp built in [`Self::ip_buf`], cut (as a
    /// GSO frame) to what `limit` and the link MTU allow.
    pub fn send_segment(&mut self, ip_len: usize, limit: SegLimit) {
        let Some(dst) = self.ns_mac else {
            crate::limited!(Debug, "no MAC known for the namespace yet; frame dropped");
            self.stats.dropped += 1;
            return;
        };
        match finish_frame_limited(&mut self.buf, ip_len, dst, self.gw_mac, self.mtu, limit) {
            Some(len) => self.write(len),
            None => self.stats.dropped += 1,
        }
    }

    /// A UDP or ICMP packet larger than the link MTU goes out in
    /// fragments (what a router on a real link would do); true if it was
    /// one (sent, or dropped when it cannot be cut).
    fn send_fragments(&mut self, ip_len: usize, dst: EthernetAddress) -> bool {
        let Some(pkt) = self.buf.get(HEADROOM..HEADROOM + ip_len) else {
            return false;
        };
        if !frag::needs_fragments(pkt, self.mtu) {
            return false;
        }
        // Copied out: queueing a fragment reuses `buf`.
        let mut pkt = pkt.to_vec();
        let ethertype = if pkt.first().is_some_and(|b| b >> 4 == 6) {
            EthernetProtocol::Ipv6
        } else {
            EthernetProtocol::Ipv4
        };
        self.frag_id = self.frag_id.wrapping_add(1);
        let mut frame = vec![0u8; HEADROOM + self.mtu];
        let (gw, mtu, id) = (self.gw_mac, self.mtu, self.frag_id);
        let cut = frag::complete_checksum(&mut pkt).and_then(|()| {
            frag::fragment(&pkt, mtu, id, |f| {
                let Some(room) = frame.get_mut(HEADROOM..HEADROOM + f.len()) else {
                    return;
                };
                room.copy_from_slice(f);
                if let Some(len) = finish_l2_frame(&mut frame, f.len(), dst, gw, ethertype) {
                    self.send_raw(&frame[..len]);
                }
            })
        });
        if cut.is_none() {
            self.stats.dropped += 1;
        }
        true
    }

    /// Send the IP packet in [`Self::ip_buf`] to an explicit MAC (a DHCP
    /// answer may go to broadcast before the client has an address).
    pub fn send_ip_to(&mut self, ip_len: usize, dst: EthernetAddress) {
        match finish_frame(&mut self.buf, ip_len, dst, self.gw_mac, self.mtu) {
            Some(len) => self.write(len),
            None => self.stats.dropped += 1,
        }
    }

    /// Send a non-IP payload (ARP) of `len` bytes built in [`Self::ip_buf`].
    pub fn send_l2(&mut self, len: usize, ethertype: EthernetProtocol, dst: EthernetAddress) {
        match finish_l2_frame(&mut self.buf, len, dst, self.gw_mac, ethertype) {
            Some(len) => self.write(len),
            None => self.stats.dropped += 1,
        }
    }

    /// Forward a frame as received from another namespace on the same
    /// network (virtio-net header and GSO state untouched).
    pub fn send_raw(&mut self, frame: &[u8]) {
        let len = frame.len().min(self.buf.len());
        if !self.pending.is_empty() {
            self.buf[..len].copy_from_slice(&frame[..len]);
            self.enqueue(len);
            return;
        }
        match self.link.write(frame) {
            Ok(_) => {
                self.stats.frames += 1;
                self.stats.bytes += frame.len() as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.buf[..len].copy_from_slice(&frame[..len]);
                self.enqueue(len);
            }
            Err(_) => self.stats.dropped += 1,
        }
    }

    fn write(&mut self, len: usize) {
        let frame = &self.buf[..len];
        if !self.pending.is_empty() {
            self.enqueue(len);
            return;
        }
        match self.link.write(frame) {
            Ok(_) => {
                self.stats.frames += 1;
                self.stats.bytes += len as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.enqueue(len),
            Err(e) => {
                // EIO while the link is down (nobody configured it yet), or a
                // frame the kernel refused: drop, like a real wire would.
                crate::limited!(Debug, "TAP write of {len} bytes failed: {e}");
                self.stats.dropped += 1;
            }
        }
    }

    fn enqueue(&mut self, len: usize) {
        if self.pending.len() >= MAX_PENDING {
            self.stats.dropped += 1;
            return;
        }
        self.stats.queued += 1;
        self.pending.push_back(self.buf[..len].into());
    }

    /// Write queued frames; true when the queue is empty afterwards.
    pub fn flush(&mut self) -> bool {
        while let Some(frame) = self.pending.front() {
            match self.link.write(frame) {
                Ok(_) => {
                    self.stats.frames += 1;
                    self.stats.bytes += frame.len() as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => self.stats.dropped += 1,
            }
            self.pending.pop_front();
        }
        true
    }
}

/// A smoltcp device that yields at most one received packet (the one rlnet
/// routed to this flow) and transmits through [`TapOut`].
pub struct Dev<'a> {
    rx: Option<&'a [u8]>,
    out: &'a mut TapOut,
    caps: &'a DeviceCapabilities,
    /// The flow's path MTU, when the namespace reported one below the link's.
    path_mtu: Option<u16>,
}

impl<'a> Dev<'a> {
    pub fn new(rx: Option<&'a [u8]>, out: &'a mut TapOut, caps: &'a DeviceCapabilities) -> Self {
        Dev {
            rx,
            out,
            caps,
            path_mtu: None,
        }
    }

    /// Segments sent through this device fit `path_mtu` (a flow's, learnt
    /// from ICMP; see `nat::pmtu`).
    pub fn with_path_mtu(mut self, path_mtu: Option<u16>) -> Self {
        self.path_mtu = path_mtu;
        self
    }

    fn tx(&mut self) -> Tx<'_> {
        Tx {
            out: self.out,
            limit: SegLimit {
                mss: None,
                path_mtu: self.path_mtu,
            },
        }
    }
}

pub struct Rx<'a>(&'a [u8]);

impl smoltcp::phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

pub struct Tx<'a> {
    out: &'a mut TapOut,
    limit: SegLimit,
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let buf = self.out.ip_buf();
        let len = len.min(buf.len());
        let r = f(&mut buf[..len]);
        self.out.send_segment(len, self.limit);
        r
    }

    /// smoltcp builds TCP segments up to the device's segmentation size and
    /// names the size they must be cut to: the effective MSS (the peer's,
    /// less options). The endpoint may sit behind a smaller link than the
    /// TAP (a bridge, a veth), so that size, not the TAP's MTU, decides.
    fn set_meta(&mut self, meta: PacketMeta) {
        self.limit.mss = meta.segmentation_offload_size.map(|s| usize::from(s.get()));
    }
}

impl Device for Dev<'_> {
    type RxToken<'b>
        = Rx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        let pkt = self.rx.take()?;
        Some((Rx(pkt), self.tx()))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        // Back-pressure instead of drops: smoltcp keeps the data and we poll
        // the flow again once the TAP drains.
        if self.out.blocked() {
            return None;
        }
        Some(self.tx())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.caps.clone()
    }
}

/// Capabilities of the TAP path: the kernel completes TCP/UDP checksums and
/// takes our 64 KB TCP frames as GSO, so smoltcp neither computes nor (for
/// frames that carry partial sums) verifies them; rlnet verifies full
/// checksums on frames without the partial flag before they reach smoltcp.
///
/// smoltcp is told the IP MTU is 65535 whatever the link's is: its MSS comes
/// from the namespace's SYN anyway, and smoltcp 0.14 drops IPv6 packets above
/// its MTU even when they carry segmentation metadata. [`TapOut`] turns any
/// TCP segment larger than the peer's MSS, the real MTU or the flow's path
/// MTU into a GSO frame cut at the smallest of them.
pub fn capabilities() -> DeviceCapabilities {
    let mut checksum = ChecksumCapabilities::default();
    checksum.ipv4 = Checksum::Both;
    checksum.tcp = Checksum::None;
    checksum.udp = Checksum::None;
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ip;
    caps.max_transmission_unit = 65535;
    caps.checksum = checksum;
    caps.segmentation.tcpv4 = NonZeroUsize::new(65535);
    caps.segmentation.tcpv6 = NonZeroUsize::new(65535);
    caps
}

/// The shared interface. It holds no per-socket state in Medium::Ip, so one
/// interface serves every flow's own socket set (and every port).
pub fn interface(plan: &AddrPlan, caps: &DeviceCapabilities, now: Instant) -> Interface {
    let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
    // Initial sequence numbers come from this seed: make it unpredictable.
    cfg.random_seed = RandomState::new().hash_one(now.total_micros());
    let mut iface = Interface::new(cfg, &mut CapsOnly(caps), now);
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(
            IpAddress::Ipv4(plan.gateway4),
            plan.net4.prefix,
        ));
        if let Some(v6) = plan.v6 {
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(v6.gateway6), v6.prefix_len));
        }
    });
    let _ = iface.routes_mut().add_default_ipv4_route(plan.gateway4);
    if let Some(v6) = plan.v6 {
        let _ = iface.routes_mut().add_default_ipv6_route(v6.gateway6);
    }
    iface.set_any_ip(true);
    iface
}

/// A device that only reports capabilities (smoltcp reads them once, when
/// the interface is made).
struct CapsOnly<'a>(&'a DeviceCapabilities);

impl Device for CapsOnly<'_> {
    type RxToken<'b>
        = Rx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_>)> {
        None
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        None
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.0.clone()
    }
}
