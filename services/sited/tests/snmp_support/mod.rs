//! A real net-snmp `snmpd` on loopback for the SNMP driver's tests, with fixed values set by
//! `override` lines so the tests know what the agent answers; and a tiny BER writer for the fake
//! agent's answers (the driver's own codec is snmp2; the fake must be able to lie).

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sited::sensor::{LostReason, SensorEvent, Value};
use sited::snmp::agent;
use snmp2::Oid;
use tempfile::TempDir;

pub const COMMUNITY: &str = "sitetest";
/// Fixed values served by [`Snmpd`] (net-snmp's `override`), under a private enterprise arc.
pub const TEMPERATURE_OID: &str = "1.3.6.1.4.1.99999.1.0";
pub const TEMPERATURE_RAW: i64 = 215;
pub const DOOR_OID: &str = "1.3.6.1.4.1.99999.2.0";
pub const DOOR_RAW: i64 = 2;
/// sysUpTime.0: served by every net-snmp agent, no hardware needed.
pub const SYS_UPTIME_OID: &str = "1.3.6.1.2.1.1.3.0";
/// Nothing is registered here.
pub const MISSING_OID: &str = "1.3.6.1.4.1.99999.7.0";

/// A running snmpd, killed (by its PID) when dropped.
pub struct Snmpd {
    dir: TempDir,
    port: u16,
    child: Option<Child>,
}

impl Snmpd {
    pub async fn start() -> Snmpd {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "rocommunity {COMMUNITY} 127.0.0.1\n\
             override .{TEMPERATURE_OID} integer {TEMPERATURE_RAW}\n\
             override .{DOOR_OID} integer {DOOR_RAW}\n"
        );
        std::fs::write(dir.path().join("snmpd.conf"), config).unwrap();
        let port = free_udp_port();
        let mut snmpd = Snmpd {
            dir,
            port,
            child: None,
        };
        snmpd.spawn().await;
        snmpd
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills snmpd; the port stays free for [`Snmpd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts snmpd again on the same port with the same configuration.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("snmpd.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/snmpd")
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(self.path("snmpd.conf"))
            // No MIB files: numeric OIDs only, and a quiet log.
            .args(["-M", "/nonexistent", "-m", ""])
            .arg(format!("udp:127.0.0.1:{}", self.port))
            .env("SNMP_PERSISTENT_DIR", self.path("persist"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("snmpd runs (apt-get install snmpd)");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let oid = Oid::from(&[1, 3, 6, 1, 2, 1, 1, 3, 0]).unwrap();
        for _ in 0..100 {
            let answer = agent::get(
                &self.address(),
                COMMUNITY.as_bytes(),
                std::slice::from_ref(&oid),
                Duration::from_millis(200),
            )
            .await;
            if answer.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "snmpd did not answer on {}; its log:\n{}",
            self.address(),
            std::fs::read_to_string(self.path("snmpd.log")).unwrap_or_default()
        );
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn sample_of<'a>(events: &'a [SensorEvent], sensor: &str) -> Option<&'a Value> {
    events.iter().find_map(|e| match e {
        SensorEvent::Sample {
            sensor: s, value, ..
        } if s.as_str() == sensor => Some(value),
        _ => None,
    })
}

pub fn lost_reason<'a>(events: &'a [SensorEvent], sensor: &str) -> Option<&'a LostReason> {
    events.iter().find_map(|e| match e {
        SensorEvent::Lost {
            sensor: s, reason, ..
        } if s.as_str() == sensor => Some(reason),
        _ => None,
    })
}

/// Everything queued in `rx` right now.
pub fn drain(rx: &mut tokio::sync::mpsc::Receiver<SensorEvent>) -> Vec<SensorEvent> {
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        events.push(event);
    }
    events
}

/// BER for the fake agent's answers.
pub mod ber {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 128 {
            out.push(len as u8);
        } else if len < 256 {
            out.extend([0x81, len as u8]);
        } else {
            out.extend([0x82, (len >> 8) as u8, len as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    pub fn integer(n: i64) -> Vec<u8> {
        let bytes = n.to_be_bytes();
        let mut start = 0;
        while start < 7
            && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
                || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
        {
            start += 1;
        }
        tlv(0x02, &bytes[start..])
    }

    /// A variable binding: the OID's content bytes (snmp2's `Oid::as_bytes`) and an encoded value.
    pub fn varbind(oid_content: &[u8], value: &[u8]) -> Vec<u8> {
        let mut content = tlv(0x06, oid_content);
        content.extend_from_slice(value);
        tlv(0x30, &content)
    }

    /// An SNMP v2c Response-PDU message.
    pub fn response(
        community: &[u8],
        request_id: i32,
        error_status: i64,
        error_index: i64,
        varbinds: &[Vec<u8>],
    ) -> Vec<u8> {
        let mut pdu = integer(request_id.into());
        pdu.extend(integer(error_status));
        pdu.extend(integer(error_index));
        pdu.extend(tlv(0x30, &varbinds.concat()));
        let mut message = integer(1);
        message.extend(tlv(0x04, community));
        message.extend(tlv(0xa2, &pdu));
        tlv(0x30, &message)
    }
}
