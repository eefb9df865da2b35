//! Tests of the VIP: frames, netlink parsing, and what needs no privileges.

use super::*;

const MAC: Mac = Mac([0x02, 0x77, 0, 0, 0, 1]);
const OTHER: Mac = Mac([0x02, 0x77, 0, 0, 0, 2]);

#[test]
fn gratuitous_arp_is_the_request_form() {
    let mut buf = [0u8; MAX_FRAME_BYTES];
    let vip = Ipv4Addr::new(10, 77, 0, 50);
    let len = arp_frame(&mut buf, MAC, ArpKind::Gratuitous, vip);
    let f = &buf[..len];
    assert_eq!(len, 60);
    assert_eq!(&f[0..6], &BROADCAST);
    assert_eq!(&f[6..12], &MAC.0);
    assert_eq!(&f[12..14], &[0x08, 0x06]);
    assert_eq!(&f[20..22], &[0, 1], "op request");
    assert_eq!(&f[22..28], &MAC.0);
    assert_eq!(&f[28..32], &vip.octets(), "sender IP = VIP");
    assert_eq!(&f[32..38], &BROADCAST, "target MAC broadcast");
    assert_eq!(&f[38..42], &vip.octets(), "target IP = VIP");
    // Our own announcement is not a conflict; the same from another MAC is.
    assert_eq!(arp_conflict(f, MAC, vip), None);
    assert_eq!(arp_conflict(f, OTHER, vip), Some(MAC));
}

#[test]
fn arp_probe_has_zero_sender_and_is_recognised_from_others_only() {
    let mut buf = [0u8; MAX_FRAME_BYTES];
    let vip = Ipv4Addr::new(10, 77, 0, 50);
    let len = arp_frame(&mut buf, MAC, ArpKind::Probe, vip);
    let f = &buf[..len];
    assert_eq!(&f[28..32], &[0, 0, 0, 0]);
    assert_eq!(&f[32..38], &[0; 6]);
    assert_eq!(&f[38..42], &vip.octets());
    assert_eq!(arp_conflict(f, MAC, vip), None);
    assert_eq!(arp_conflict(f, OTHER, vip), Some(MAC), "simultaneous probe");
    assert_eq!(arp_conflict(f, OTHER, Ipv4Addr::new(10, 77, 0, 51)), None);
    assert_eq!(arp_conflict(&f[..30], OTHER, vip), None, "truncated");
}

#[test]
fn unsolicited_na_checksums_to_zero_and_carries_override_and_target() {
    let mut buf = [0u8; MAX_FRAME_BYTES];
    let vip: Ipv6Addr = "fd00:77::50".parse().unwrap();
    let len = unsolicited_na(&mut buf, MAC, vip);
    let f = &buf[..len];
    assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(f[ETH_HLEN + 7], 255, "hop limit");
    let icmp = &f[ETH_HLEN + IPV6_HLEN..];
    assert_eq!(icmp[0], 136);
    assert_eq!(icmp[4], 0x20, "override only");
    assert_eq!(&icmp[8..24], &vip.octets());
    assert_eq!(&icmp[26..32], &MAC.0);
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    // Summing a message that includes its checksum gives zero (complemented: 0).
    assert_eq!(icmpv6_checksum(vip, all_nodes, icmp), 0);
    assert_eq!(nd_conflict(f, OTHER, vip), Some(MAC));
    assert_eq!(nd_conflict(f, MAC, vip), None);
}

#[test]
fn icmpv6_checksum_matches_a_known_packet() {
    // An NA fe80::1 -> ff02::1, target fe80::1, O flag, TLLAO 02:00:00:00:00:01; the
    // expected checksum was computed independently with Python (RFC 1071 sum).
    let src: Ipv6Addr = "fe80::1".parse().unwrap();
    let dst: Ipv6Addr = "ff02::1".parse().unwrap();
    let mut icmp = [0u8; 32];
    icmp[0] = 136;
    icmp[4] = 0x20;
    icmp[8..24].copy_from_slice(&src.octets());
    icmp[24] = 2;
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let sum = icmpv6_checksum(src, dst, &icmp);
    assert_eq!(sum, 0x579b);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(icmpv6_checksum(src, dst, &icmp), 0);
}

#[test]
fn dad_solicitation_goes_to_the_solicited_node_group() {
    let mut buf = [0u8; MAX_FRAME_BYTES];
    let vip: Ipv6Addr = "fd00:77::1:2:3".parse().unwrap();
    let len = dad_solicitation(&mut buf, MAC, vip);
    let f = &buf[..len];
    assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0x02, 0x00, 0x03]);
    assert_eq!(&f[ETH_HLEN + 8..ETH_HLEN + 24], &[0; 16], "source ::");
    assert_eq!(
        Ipv6Addr::from(<[u8; 16]>::try_from(&f[ETH_HLEN + 24..ETH_HLEN + 40]).unwrap()),
        "ff02::1:ff02:3".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(f[ETH_HLEN + IPV6_HLEN], 135);
    let icmp = &f[ETH_HLEN + IPV6_HLEN..];
    assert_eq!(
        icmpv6_checksum(Ipv6Addr::UNSPECIFIED, solicited_node(vip), icmp),
        0
    );
    assert_eq!(nd_conflict(f, OTHER, vip), Some(MAC), "simultaneous DAD");
    assert_eq!(nd_conflict(f, MAC, vip), None);
}

#[test]
fn address_messages_parse_without_allocation_and_prefer_ifa_local() {
    let v4 = Ipv4Addr::new(10, 0, 0, 50);
    let req = address_request(RequestKind::New, 7, IpAddr::V4(v4), 24, Some("eth0:bbwd"));
    let msg = NetlinkBuffer::new_checked(&req[..]).unwrap();
    assert_eq!(msg.message_type(), RTM_NEWADDR);
    assert_eq!(parse_address(msg.payload()), Some((7, IpAddr::V4(v4))));
    let v6: Ipv6Addr = "fd00::50".parse().unwrap();
    let req = address_request(RequestKind::Del, 9, IpAddr::V6(v6), 64, None);
    let msg = NetlinkBuffer::new_checked(&req[..]).unwrap();
    assert_eq!(msg.message_type(), RTM_DELADDR);
    assert_eq!(parse_address(msg.payload()), Some((9, IpAddr::V6(v6))));
    assert_eq!(parse_address(&[0u8; 4]), None);
    assert_eq!(parse_address(&[0u8; 8]), None);
}

#[test]
fn error_names_operation_address_and_interface() {
    let e = VipError {
        op: VipOp::Add,
        address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 50)),
        interface: "eth0".into(),
        cause: Cause::Os(Errno::EPERM),
    };
    let text = e.to_string();
    assert!(text.contains("add") && text.contains("10.0.0.50") && text.contains("eth0"));
    assert!(text.contains("EPERM"), "{text}");
}
