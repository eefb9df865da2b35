//! What every rtnetlink user here shares: walking the messages of one netlink buffer.
//!
//! Owns: the walk (lengths checked, a truncated or malformed message ends it). Must not: open
//! sockets or interpret payloads (the VIP's requests are `vip::netlink`; the link watch reads
//! its own messages).

use netlink_packet_core::NetlinkBuffer;

/// Calls `f` for each well-formed message in `buf`; false if a malformed one ended the walk.
/// (Shared with `linkwatch`.)
pub(crate) fn for_each_message(buf: &[u8], mut f: impl FnMut(&NetlinkBuffer<&[u8]>)) -> bool {
    let mut offset = 0;
    while offset < buf.len() {
        let Ok(msg) = NetlinkBuffer::new_checked(&buf[offset..]) else {
            return false;
        };
        let len = msg.length() as usize;
        f(&msg);
        // Messages are 4-byte aligned; a zero length would loop forever.
        offset += len.max(16).next_multiple_of(4);
    }
    true
}
