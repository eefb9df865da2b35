//! The wake-up the worker gives the caller's poll loop: an eventfd, signalled when a result (or
//! a health change) is ready, drained by the caller before it looks.
//!
//! Owns: one non-blocking eventfd. Must not: carry data (the channel does) or block either side.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A non-blocking wake-up for the caller's poll loop (an eventfd).
pub(super) struct EventFd(pub(super) OwnedFd);

impl EventFd {
    pub(super) fn new() -> std::io::Result<EventFd> {
        // SAFETY: eventfd(2) with valid flags; the returned descriptor is checked and then
        // owned by exactly one `OwnedFd`.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(super) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own; a full counter
        // (EAGAIN) still leaves it readable, which is all a wake-up needs.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    pub(super) fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd we own.
        unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}
