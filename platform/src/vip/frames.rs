//! The frames on the wire: gratuitous ARP and the ARP probe (IPv4), the unsolicited neighbour
//! advertisement and the DAD solicitation (IPv6), and recognising an answer that means
//! someone else holds the VIP. Formats: the module docs of `vip`.
//!
//! Owns: bytes in, bytes out; pure. Must not: touch a socket.

use super::*;

pub(super) const BROADCAST: [u8; 6] = [0xff; 6];

#[derive(Clone, Copy)]
pub(super) enum ArpKind {
    /// Request form: sender IP = target IP = VIP, target MAC broadcast.
    Gratuitous,
    /// RFC 5227 probe: sender IP 0.0.0.0, target MAC zero, target IP = VIP.
    Probe,
}

pub(super) fn ethernet(buf: &mut [u8], dst: [u8; 6], src: Mac, ethertype: u16) {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// Writes an ARP request frame (padded to the Ethernet minimum of 60 bytes); returns its length.
pub(super) fn arp_frame(
    buf: &mut [u8; MAX_FRAME_BYTES],
    mac: Mac,
    kind: ArpKind,
    vip: Ipv4Addr,
) -> usize {
    buf.fill(0);
    ethernet(buf, BROADCAST, mac, ETH_P_ARP);
    let (sender_ip, target_mac) = match kind {
        ArpKind::Gratuitous => (vip, BROADCAST),
        ArpKind::Probe => (Ipv4Addr::UNSPECIFIED, [0; 6]),
    };
    let arp = &mut buf[ETH_HLEN..];
    arp[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    arp[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    arp[4] = 6;
    arp[5] = 4;
    arp[6..8].copy_from_slice(&1u16.to_be_bytes()); // op: request
    arp[8..14].copy_from_slice(&mac.0);
    arp[14..18].copy_from_slice(&sender_ip.octets());
    arp[18..24].copy_from_slice(&target_mac);
    arp[24..28].copy_from_slice(&vip.octets());
    ARP_FRAME_BYTES
}

/// A conflict in an ARP frame: someone else claims `vip` (any op with sender IP = VIP), or
/// probes for it at the same time (request, sender IP 0, target IP = VIP).
pub(super) fn arp_conflict(frame: &[u8], ours: Mac, vip: Ipv4Addr) -> Option<Mac> {
    if frame.len() < ETH_HLEN + 28 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let arp = &frame[ETH_HLEN..];
    if arp[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([arp[6], arp[7]]);
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&arp[8..14]);
    let sender_ip = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    let target_ip = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
    let claims = sender_ip == vip && (op == 1 || op == 2);
    let probes = op == 1 && sender_ip.is_unspecified() && target_ip == vip;
    (Mac(sender) != ours && (claims || probes)).then_some(Mac(sender))
}

/// The solicited-node multicast group of `addr` (ff02::1:ffXX:XXXX).
pub(super) fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address of an IPv6 multicast group (33:33 + its last 32 bits).
pub(super) fn multicast_mac(group: Ipv6Addr) -> [u8; 6] {
    let o = group.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

/// Writes Ethernet + IPv6 headers for an ICMPv6 message of `icmp_len` bytes, hop limit 255.
pub(super) fn ipv6_icmp_headers(
    buf: &mut [u8],
    mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    icmp_len: usize,
) {
    ethernet(buf, multicast_mac(dst), mac, ETH_P_IPV6);
    let ip = &mut buf[ETH_HLEN..ETH_HLEN + IPV6_HLEN];
    ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class, no flow label
    ip[4..6].copy_from_slice(&(icmp_len as u16).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = 255; // neighbour discovery requires hop limit 255 (RFC 4861 7.1.2)
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
}

/// The ICMPv6 checksum (RFC 4443 2.3) over the IPv6 pseudo-header and `icmp` (whose checksum
/// field must be zero).
pub(super) fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_be_bytes([pair[0], 0])
            };
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(icmp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub(super) fn finish_icmp(buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr, len: usize) {
    let start = ETH_HLEN + IPV6_HLEN;
    let sum = icmpv6_checksum(src, dst, &buf[start..start + len]);
    buf[start + 2..start + 4].copy_from_slice(&sum.to_be_bytes());
}

/// Unsolicited neighbour advertisement for `vip` from `mac`, to all nodes; returns its length.
pub(super) fn unsolicited_na(buf: &mut [u8; MAX_FRAME_BYTES], mac: Mac, vip: Ipv6Addr) -> usize {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    buf.fill(0);
    let icmp_len = NA_FRAME_BYTES - ETH_HLEN - IPV6_HLEN;
    ipv6_icmp_headers(buf, mac, vip, all_nodes, icmp_len);
    let icmp = &mut buf[ETH_HLEN + IPV6_HLEN..NA_FRAME_BYTES];
    icmp[0] = ND_NEIGHBOR_ADVERT;
    icmp[4] = NA_FLAG_OVERRIDE;
    icmp[8..24].copy_from_slice(&vip.octets());
    icmp[24] = ND_OPT_TARGET_LL_ADDR;
    icmp[25] = 1; // option length in units of 8 bytes
    icmp[26..32].copy_from_slice(&mac.0);
    finish_icmp(buf, vip, all_nodes, icmp_len);
    NA_FRAME_BYTES
}

/// Duplicate-address-detection solicitation for `vip` (source `::`, no source link-layer
/// option, to the solicited-node group); returns its length.
pub(super) fn dad_solicitation(buf: &mut [u8; MAX_FRAME_BYTES], mac: Mac, vip: Ipv6Addr) -> usize {
    let group = solicited_node(vip);
    buf.fill(0);
    let icmp_len = NS_FRAME_BYTES - ETH_HLEN - IPV6_HLEN;
    ipv6_icmp_headers(buf, mac, Ipv6Addr::UNSPECIFIED, group, icmp_len);
    let icmp = &mut buf[ETH_HLEN + IPV6_HLEN..NS_FRAME_BYTES];
    icmp[0] = ND_NEIGHBOR_SOLICIT;
    icmp[8..24].copy_from_slice(&vip.octets());
    finish_icmp(buf, Ipv6Addr::UNSPECIFIED, group, icmp_len);
    NS_FRAME_BYTES
}

/// A conflict in an IPv6 frame: an advertisement for `vip` from another MAC, or another host's
/// DAD solicitation for it. The MAC reported is the frame's Ethernet source.
pub(super) fn nd_conflict(frame: &[u8], ours: Mac, vip: Ipv6Addr) -> Option<Mac> {
    let icmp_at = ETH_HLEN + IPV6_HLEN;
    if frame.len() < icmp_at + 24 || frame[12..14] != ETH_P_IPV6.to_be_bytes() {
        return None;
    }
    let ip = &frame[ETH_HLEN..icmp_at];
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_ICMPV6 || ip[7] != 255 {
        return None;
    }
    let icmp = &frame[icmp_at..];
    let mut target = [0u8; 16];
    target.copy_from_slice(&icmp[8..24]);
    if Ipv6Addr::from(target) != vip {
        return None;
    }
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&frame[6..12]);
    let src_unspecified = ip[8..24].iter().all(|&b| b == 0);
    let conflict =
        icmp[0] == ND_NEIGHBOR_ADVERT || (icmp[0] == ND_NEIGHBOR_SOLICIT && src_unspecified);
    (Mac(sender) != ours && conflict).then_some(Mac(sender))
}
