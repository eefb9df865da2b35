//! The IPMI commands bbwd sends (ipmi-rs has none of these), as ipmi-rs `Message`s and
//! `IpmiCommand` reply parsers, so that they run on both transports (RMCP+ and `/dev/ipmi0`).

use ipmi_rs::connection::{IpmiCommand, Message, NetFn};

use super::{Malformed, Power, PowerAction, WatchdogAction, WatchdogTimer};

/// Set Session Privilege Level (App 0x3B).
pub struct SetSessionPrivilege(pub u8);
/// Administrator, operator (IPMI privilege levels).
pub const ADMINISTRATOR: u8 = 4;
pub const OPERATOR: u8 = 3;

impl From<SetSessionPrivilege> for Message {
    fn from(c: SetSessionPrivilege) -> Message {
        Message::new_request(NetFn::App, 0x3B, vec![c.0])
    }
}
impl IpmiCommand for SetSessionPrivilege {
    type Output = u8;
    type Error = Malformed;
    fn parse_success_response(data: &[u8]) -> Result<u8, Malformed> {
        data.first()
            .map(|p| p & 0x0f)
            .ok_or(Malformed("set session privilege: empty reply"))
    }
}

/// Get Session Info (App 0x3D) for the current session: its handle.
pub struct GetCurrentSessionHandle;
impl From<GetCurrentSessionHandle> for Message {
    fn from(_: GetCurrentSessionHandle) -> Message {
        Message::new_request(NetFn::App, 0x3D, vec![0x00])
    }
}
impl IpmiCommand for GetCurrentSessionHandle {
    /// (handle, active sessions)
    type Output = (u8, u8);
    type Error = Malformed;
    fn parse_success_response(data: &[u8]) -> Result<(u8, u8), Malformed> {
        match data {
            [handle, _slots, active, ..] => Ok((*handle, *active & 0x3f)),
            _ => Err(Malformed("get session info: short reply")),
        }
    }
}

/// Close Session (App 0x3C) by handle: session id 0 and the handle (IPMI 2.0 §22.19).
pub struct CloseSessionByHandle(pub u8);
impl From<CloseSessionByHandle> for Message {
    fn from(c: CloseSessionByHandle) -> Message {
        Message::new_request(NetFn::App, 0x3C, vec![0, 0, 0, 0, c.0])
    }
}
impl IpmiCommand for CloseSessionByHandle {
    type Output = ();
    type Error = Malformed;
    fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
        Ok(())
    }
}

/// Get Chassis Status (Chassis 0x01).
pub struct GetChassisStatus;
impl From<GetChassisStatus> for Message {
    fn from(_: GetChassisStatus) -> Message {
        Message::new_request(NetFn::Chassis, 0x01, Vec::new())
    }
}
impl IpmiCommand for GetChassisStatus {
    type Output = Power;
    type Error = Malformed;
    fn parse_success_response(data: &[u8]) -> Result<Power, Malformed> {
        // Byte 1, bit 0: "system power is on". Three bytes are mandatory.
        if data.len() < 3 {
            return Err(Malformed("get chassis status: short reply"));
        }
        Ok(if data[0] & 1 != 0 {
            Power::On
        } else {
            Power::Off
        })
    }
}

/// Chassis Control (Chassis 0x02).
pub struct ChassisControl(pub PowerAction);
impl From<ChassisControl> for Message {
    fn from(c: ChassisControl) -> Message {
        Message::new_request(NetFn::Chassis, 0x02, vec![c.0 as u8])
    }
}
impl IpmiCommand for ChassisControl {
    type Output = ();
    type Error = Malformed;
    fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
        Ok(())
    }
}

/// Set Watchdog Timer (App 0x24).
pub struct SetWatchdogTimer {
    /// Byte 1: timer use, bit 6 don't stop, bit 7 don't log.
    pub timer_use: u8,
    pub action: WatchdogAction,
    /// Byte 4: expiration flags to clear.
    pub clear_flags: u8,
    pub countdown_100ms: u16,
}
impl From<SetWatchdogTimer> for Message {
    fn from(c: SetWatchdogTimer) -> Message {
        let [lsb, msb] = c.countdown_100ms.to_le_bytes();
        // Byte 3: pre-timeout interval 0 (no pre-timeout interrupt).
        let data = vec![c.timer_use, c.action as u8, 0, c.clear_flags, lsb, msb];
        Message::new_request(NetFn::App, 0x24, data)
    }
}
impl IpmiCommand for SetWatchdogTimer {
    type Output = ();
    type Error = Malformed;
    fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
        Ok(())
    }
}

/// Reset Watchdog Timer (App 0x22).
pub struct ResetWatchdogTimer;
impl From<ResetWatchdogTimer> for Message {
    fn from(_: ResetWatchdogTimer) -> Message {
        Message::new_request(NetFn::App, 0x22, Vec::new())
    }
}
impl IpmiCommand for ResetWatchdogTimer {
    type Output = ();
    type Error = Malformed;
    fn parse_success_response(_: &[u8]) -> Result<(), Malformed> {
        Ok(())
    }
}

/// Get Watchdog Timer (App 0x25).
pub struct GetWatchdogTimer;
impl From<GetWatchdogTimer> for Message {
    fn from(_: GetWatchdogTimer) -> Message {
        Message::new_request(NetFn::App, 0x25, Vec::new())
    }
}
impl IpmiCommand for GetWatchdogTimer {
    type Output = WatchdogTimer;
    type Error = Malformed;
    fn parse_success_response(d: &[u8]) -> Result<WatchdogTimer, Malformed> {
        // The spec says 8 bytes; accept the 6 that ipmi_sim sends (no present countdown).
        if d.len() < 6 {
            return Err(Malformed("get watchdog timer: short reply"));
        }
        Ok(WatchdogTimer {
            timer_use: d[0] & 0x07,
            running: d[0] & 0x40 != 0,
            action: d[1] & 0x07,
            expired_flags: d[3],
            initial_100ms: u16::from_le_bytes([d[4], d[5]]),
            present_100ms: (d.len() >= 8).then(|| u16::from_le_bytes([d[6], d[7]])),
        })
    }
}
