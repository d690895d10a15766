//! Packet capture in the lab's underlay namespace, and the count of what travels inside VXLAN.

use crate::cmd::LabError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What a capture saw inside VXLAN (UDP 4789) packets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CaptureCounts {
    pub vxlan_packets: usize,
    pub inner_arp: usize,
    pub inner_broadcast: usize,
    pub inner_multicast: usize,
    /// Inner DHCP (UDP ports 67/68) and DHCPv6 (546/547) frames.
    pub inner_dhcp: usize,
}

/// A running `tcpdump` writing a pcap file.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Capture VXLAN traffic on `interface` inside namespace `ns`.
    pub fn start(ns: &str, interface: &str, file: &Path) -> Result<Capture, LabError> {
        Self::start_filtered(ns, interface, file, &["udp", "port", "4789"])
    }

    /// Capture what matches the tcpdump `filter` on `interface` inside namespace `ns`.
    pub fn start_filtered(ns: &str, interface: &str, file: &Path, filter: &[&str]) -> Result<Capture, LabError> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-i", interface, "-U", "--immediate-mode", "-n", "-w"])
            .arg(file)
            .args(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // tcpdump needs a moment to open the interface.
        std::thread::sleep(std::time::Duration::from_millis(700));
        Ok(Capture { child, file: file.to_path_buf() })
    }

    /// Stop (SIGINT, so the file is complete) and count.
    pub fn stop(self) -> Result<CaptureCounts, LabError> {
        let (bytes, file) = self.finish()?;
        count_vxlan(&bytes).ok_or_else(|| LabError::Other(format!("{} is not a pcap file", file.display())))
    }

    /// Stop and count the captured frames.
    pub fn stop_counting_frames(self) -> Result<usize, LabError> {
        let (bytes, file) = self.finish()?;
        frames(&bytes).map(|f| f.len()).ok_or_else(|| LabError::Other(format!("{} is not a pcap file", file.display())))
    }

    /// Stops tcpdump with SIGINT (so the file is complete) and reads the file.
    fn finish(mut self) -> Result<(Vec<u8>, PathBuf), LabError> {
        let pid = self.child.id().to_string();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let _ = self.child.wait();
        Ok((std::fs::read(&self.file)?, self.file.clone()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Count VXLAN packets in a pcap (Ethernet link type) and classify their inner frames.
pub fn count_vxlan(pcap: &[u8]) -> Option<CaptureCounts> {
    let mut counts = CaptureCounts::default();
    for frame in frames(pcap)? {
        classify(frame, &mut counts);
    }
    Some(counts)
}

/// The frames of a pcap file, or `None` when it is not one.
fn frames(pcap: &[u8]) -> Option<Vec<&[u8]>> {
    if pcap.len() < 24 {
        return None;
    }
    let little = match &pcap[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return None,
    };
    let u32_at = |b: &[u8], i: usize| {
        let a = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut frames = Vec::new();
    let mut pos = 24;
    while pos + 16 <= pcap.len() {
        let len = u32_at(pcap, pos + 8) as usize;
        let start = pos + 16;
        let end = (start + len).min(pcap.len());
        frames.push(&pcap[start..end]);
        pos = start + len;
    }
    Some(frames)
}

fn classify(frame: &[u8], counts: &mut CaptureCounts) {
    // Ethernet (14) + IPv4 (IHL) + UDP (8) + VXLAN (8) + inner Ethernet (14).
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    let udp = 14 + ihl;
    if frame[14 + 9] != 17 || frame.len() < udp + 8 + 8 + 14 {
        return;
    }
    let dport = u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]);
    if dport != 4789 {
        return;
    }
    counts.vxlan_packets += 1;
    let inner = &frame[udp + 16..];
    let dst = &inner[..6];
    let ethertype = u16::from_be_bytes([inner[12], inner[13]]);
    if ethertype == 0x0806 {
        counts.inner_arp += 1;
    }
    if ethertype == 0x0800 && inner.len() >= 14 + 20 && inner[14 + 9] == 17 {
        let udp = 14 + ((inner[14] & 0x0f) as usize) * 4;
        if inner.len() >= udp + 4 {
            let ports = [
                u16::from_be_bytes([inner[udp], inner[udp + 1]]),
                u16::from_be_bytes([inner[udp + 2], inner[udp + 3]]),
            ];
            if ports.iter().any(|p| matches!(p, 67 | 68 | 546 | 547)) {
                counts.inner_dhcp += 1;
            }
        }
    }
    if ethertype == 0x86dd && inner.len() >= 14 + 40 + 4 && inner[14 + 6] == 17 {
        let udp = 14 + 40;
        let ports =
            [u16::from_be_bytes([inner[udp], inner[udp + 1]]), u16::from_be_bytes([inner[udp + 2], inner[udp + 3]])];
        if ports.iter().any(|p| matches!(p, 546 | 547)) {
            counts.inner_dhcp += 1;
        }
    }
    if dst == [0xff; 6] {
        counts.inner_broadcast += 1;
    } else if dst[0] & 1 == 1 {
        counts.inner_multicast += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian pcap with one record per frame.
    fn pcap(frames: &[&[u8]]) -> Vec<u8> {
        let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1];
        file.extend_from_slice(&[0; 20]);
        for frame in frames {
            file.extend_from_slice(&[0; 8]);
            let len = (frame.len() as u32).to_le_bytes();
            file.extend_from_slice(&len);
            file.extend_from_slice(&len);
            file.extend_from_slice(frame);
        }
        file
    }

    #[test]
    fn frames_are_split_by_their_record_headers() {
        let file = pcap(&[&[1; 60], &[2; 98]]);
        let split = frames(&file).unwrap();
        assert_eq!(split.iter().map(|f| f.len()).collect::<Vec<_>>(), [60, 98]);
        assert_eq!(count_vxlan(&file), Some(CaptureCounts::default()), "neither is VXLAN");
        assert!(frames(b"not a pcap file at all..").is_none());
    }
}
