//! `bbwd-watchdog`: the watchdogs that reset the node when bbwd hangs or cannot correct it.
